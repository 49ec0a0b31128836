// A held message's content, safely: header fields and text as text; the HTML part sanitised with
// DOMPurify and shown in a sandboxed frame (no scripts, no forms, no same-origin access) whose content
// security policy blocks every remote load (images, styles, fonts), so opening a message tells its
// sender nothing. Attachments are listed by true type and hash, never opened.
import { useMemo, useState } from 'react';
import DOMPurify from 'dompurify';
import { useLoad } from './load.ts';

const FRAME_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:";

const REMOTE_ATTRS = ['src', 'srcset', 'background', 'poster', 'lowsrc', 'dynsrc'];

/**
 * The HTML without scripts, handlers, forms or frames (DOMPurify), and without remote loads: an image or
 * any other source that is not a data: URI is dropped here (the frame's CSP would block it anyway, this
 * way nothing is even tried). Returns the document and how many remote sources were dropped.
 */
export function sanitizeHtml(html: string): { doc: string; blocked: number } {
  let blocked = 0;
  const drop = (node: Element) => {
    for (const a of REMOTE_ATTRS) {
      const v = node.getAttribute?.(a);
      if (v !== null && v !== undefined && !/^\s*data:/i.test(v)) {
        node.removeAttribute(a);
        blocked++;
      }
    }
    // links stay readable but lead nowhere from here
    if (node.tagName === 'A' && node.hasAttribute('href')) {
      node.setAttribute('title', node.getAttribute('href') ?? '');
      node.removeAttribute('href');
    }
  };
  DOMPurify.addHook('afterSanitizeAttributes', drop);
  try {
    const clean = DOMPurify.sanitize(html, {
      FORBID_TAGS: ['form', 'input', 'button', 'base', 'meta', 'link', 'iframe', 'frame', 'object', 'embed'],
    });
    return {
      doc: `<!doctype html><html><head><meta http-equiv="Content-Security-Policy" content="${FRAME_CSP}"></head><body>${clean}</body></html>`,
      blocked,
    };
  } finally {
    DOMPurify.removeHook('afterSanitizeAttributes');
  }
}

/** `attachments`: also list the attachments (by true type and hash; never opened from here). */
export function MessageContent({ path, attachments = false }: { path: string; attachments?: boolean }) {
  const r = useLoad<any>(path);
  const [showHtml, setShowHtml] = useState(false);
  const safe = useMemo(() => (r.data?.html ? sanitizeHtml(r.data.html) : null), [r.data]);
  if (r.error) return <p className="error">{r.error}</p>;
  if (!r.data) return <p>Loading the message…</p>;
  const m = r.data;
  return (
    <div className="content">
      <details>
        <summary>Header fields ({m.headers.length})</summary>
        <table>
          <tbody>
            {m.headers.map((h: any, i: number) => (
              <tr key={i}>
                <th>{h.name}</th>
                <td className="pre">{h.value}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
      <h4>Text</h4>
      <pre className="pre body-text">{m.text || '(no text part)'}</pre>
      {m.html && (
        <>
          <h4>HTML</h4>
          {showHtml ? (
            <>
              {safe!.blocked > 0 && (
                <p className="muted">
                  {safe!.blocked} remote image(s) or source(s) not loaded; links are shown, not followed.
                </p>
              )}
              <iframe
                title="HTML part, sanitised"
                sandbox=""
                srcDoc={safe!.doc}
                className="html-view"
                referrerPolicy="no-referrer"
              />
            </>
          ) : (
            <button type="button" onClick={() => setShowHtml(true)}>
              Show the HTML part (sanitised, remote content blocked)
            </button>
          )}
        </>
      )}
      {attachments && m.attachments.length > 0 && (
        <>
          <h4>Attachments (not opened)</h4>
          <table>
            <thead>
              <tr>
                <th>Name</th>
                <th>True type</th>
                <th>Size</th>
                <th>SHA-256</th>
              </tr>
            </thead>
            <tbody>
              {m.attachments.map((a: any, i: number) => (
                <tr key={i}>
                  <td>{a.name || '(no name)'}</td>
                  <td>{a.trueType ?? 'unknown'}</td>
                  <td>{a.size}</td>
                  <td className="pre">{a.sha256}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {m.truncated && <p className="muted">Only the first part of this large message is shown.</p>}
    </div>
  );
}
