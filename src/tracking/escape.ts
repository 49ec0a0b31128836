// Peer text in logs and terminals (SECURITY.md): a Subject, Message-ID, HELO or reply from the internet may
// carry NUL, terminal escape sequences (ESC[31m, OSC 52 clipboard writes), or C1 controls. Everything we
// write to the mail log, tracking and CLI output goes through here; only the message itself keeps the
// original bytes.

// C0 controls, DEL and C1 controls (U+0080–U+009F, which some terminals honour like ESC sequences).
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/g;

/** Replaces each control character with a visible `\xNN` escape (tab with a space). */
export function escapeControls(text: string): string {
  if (!CONTROL.test(text)) return text;
  return text.replace(CONTROLS, (c) => (c === '\t' ? ' ' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/** escapeControls over every string inside a JSON-like value (event data, API records). */
export function escapeDeep<T>(value: T): T {
  if (typeof value === 'string') return escapeControls(value) as T;
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const v = escapeDeep(value[i]);
      if (v !== value[i]) (out ??= value.slice())[i] = v;
    }
    return (out ?? value) as T;
  }
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    let out: Record<string, unknown> | null = null;
    for (const [k, v] of Object.entries(value)) {
      const e = escapeDeep(v);
      if (e !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = e;
    }
    return (out ?? value) as T;
  }
  return value;
}
