// Policies and settings, generated from the configuration's JSON Schema (the zod schema that also
// validates, documents and gives defaults): simple values as form fields, lists and maps as JSON. Every
// change is checked by the gateway at once (every error shown at its field); saving shows what changes
// first, keeps the previous file as a backup, and applies at the next start.
import { useEffect, useMemo, useState } from 'react';
import { api, ApiFailure } from '../api.ts';
import { useLoad } from '../load.ts';

type Json = any;
interface Check {
  valid: boolean;
  errors: Array<{ path: string; message: string }>;
  changes: Array<{ path: string; before: unknown; after: unknown }>;
}

function getIn(doc: Json, path: string[]): Json {
  return path.reduce((o, k) => (o && typeof o === 'object' ? o[k] : undefined), doc);
}

function setIn(doc: Json, path: string[], value: Json): Json {
  const [k, ...rest] = path;
  const base = doc && typeof doc === 'object' && !Array.isArray(doc) ? { ...doc } : {};
  if (rest.length === 0) {
    if (value === undefined) delete base[k];
    else base[k] = value;
  } else {
    const child = setIn(base[k], rest, value);
    if (Object.keys(child).length === 0) delete base[k];
    else base[k] = child;
  }
  return base;
}

/** the schema of a property, past optional wrappers (anyOf with null) */
function plain(s: Json): Json {
  if (s?.anyOf?.length === 2 && s.anyOf.some((x: Json) => x.type === 'null'))
    return s.anyOf.find((x: Json) => x.type !== 'null');
  return s;
}

function kind(s: Json): 'boolean' | 'number' | 'enum' | 'string' | 'object' | 'json' {
  const p = plain(s);
  if (p?.enum) return 'enum';
  if (p?.type === 'boolean') return 'boolean';
  if (p?.type === 'number' || p?.type === 'integer') return 'number';
  if (p?.type === 'string') return 'string';
  if (p?.type === 'object' && p.properties && !p.additionalProperties) return 'object';
  return 'json';
}

function Field(props: {
  name: string;
  path: string[];
  schema: Json;
  doc: Json;
  errors: Check['errors'];
  onChange: (path: string[], v: Json) => void;
  depth: number;
}) {
  const { name, path, schema, doc, errors, onChange, depth } = props;
  const k = kind(schema);
  const id = path.join('.');
  const value = getIn(doc, path);
  const own = errors.filter((e) => e.path === id || (k === 'json' && e.path.startsWith(id)));
  const s = plain(schema);
  const help = schema.description ?? s?.description;
  if (k === 'object' && depth < 3)
    return (
      <fieldset>
        <legend>{name}</legend>
        {help && <p className="muted">{help}</p>}
        {Object.entries<Json>(s.properties).map(([child, cs]) => (
          <Field
            key={child}
            name={child}
            path={[...path, child]}
            schema={cs}
            doc={doc}
            errors={errors}
            onChange={onChange}
            depth={depth + 1}
          />
        ))}
      </fieldset>
    );
  const def = schema.default ?? s?.default;
  let input;
  if (k === 'boolean')
    input = (
      <select
        id={id}
        value={value === undefined ? '' : String(value)}
        onChange={(e) => onChange(path, e.target.value === '' ? undefined : e.target.value === 'true')}
      >
        <option value="">default ({String(def ?? '–')})</option>
        <option value="true">true</option>
        <option value="false">false</option>
      </select>
    );
  else if (k === 'enum')
    input = (
      <select
        id={id}
        value={value ?? ''}
        onChange={(e) => onChange(path, e.target.value === '' ? undefined : e.target.value)}
      >
        <option value="">default ({String(def ?? '–')})</option>
        {s.enum.map((x: string) => (
          <option key={x}>{x}</option>
        ))}
      </select>
    );
  else if (k === 'number' || k === 'string')
    input = (
      <input
        id={id}
        type={k === 'number' ? 'number' : 'text'}
        value={value ?? ''}
        placeholder={def === undefined ? '' : `default: ${String(def)}`}
        onChange={(e) =>
          onChange(path, e.target.value === '' ? undefined : k === 'number' ? Number(e.target.value) : e.target.value)
        }
      />
    );
  else input = <JsonField id={id} value={value} onChange={(v) => onChange(path, v)} />;
  return (
    <div className={`field${own.length ? ' invalid' : ''}`}>
      <label htmlFor={id}>{name}</label>
      {input}
      {help && <small className="muted">{help}</small>}
      {own.map((e) => (
        <small key={e.path + e.message} className="error" role="alert">
          {e.path}: {e.message}
        </small>
      ))}
    </div>
  );
}

function JsonField({ id, value, onChange }: { id: string; value: Json; onChange: (v: Json) => void }) {
  const [text, setText] = useState(value === undefined ? '' : JSON.stringify(value, null, 2));
  const [bad, setBad] = useState(false);
  return (
    <>
      <textarea
        id={id}
        rows={Math.min(12, Math.max(2, text.split('\n').length))}
        value={text}
        placeholder="(default)"
        onChange={(e) => {
          setText(e.target.value);
          if (e.target.value.trim() === '') {
            setBad(false);
            onChange(undefined);
            return;
          }
          try {
            onChange(JSON.parse(e.target.value));
            setBad(false);
          } catch {
            setBad(true);
          }
        }}
      />
      {bad && <small className="error">not valid JSON yet</small>}
    </>
  );
}

export function Settings() {
  const schema = useLoad<Json>('/api/v1/config/schema');
  const current = useLoad<Json>('/api/v1/config');
  const [doc, setDoc] = useState<Json>(null);
  const [check, setCheck] = useState<Check | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  useEffect(() => {
    if (current.data && doc === null) setDoc(current.data.document);
  }, [current.data, doc]);
  useEffect(() => {
    if (doc === null) return;
    const t = setTimeout(() => {
      api<Check>('POST', '/api/v1/config/check', { document: doc }).then(setCheck, (e) => setNote(String(e)));
    }, 250);
    return () => clearTimeout(t);
  }, [doc]);
  const sections = useMemo(() => Object.entries<Json>(schema.data?.properties ?? {}), [schema.data]);
  if (schema.error || current.error) return <p className="error">{schema.error ?? current.error}</p>;
  if (!schema.data || doc === null) return <p>Loading…</p>;
  const save = async () => {
    try {
      const r = await api<any>('PUT', '/api/v1/config', { document: doc });
      setNote(`saved ${r.changes.length} change(s); the previous file is ${r.backup}; apply them when you are ready`);
      setConfirming(false);
      current.reload();
    } catch (e) {
      setNote(e instanceof ApiFailure ? `${e.message} (${e.code})` : String(e));
    }
  };
  // The gateway restarts its services on the saved file; its API is away for a moment meanwhile.
  const apply = async () => {
    try {
      const asked = Date.now();
      const r = await api<any>('POST', '/api/v1/config/apply', {});
      setNote(`applying ${r.changes.length} change(s): the services restart…`);
      const deadline = Date.now() + 120_000;
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        const now = await api<any>('GET', '/api/v1/config').catch(() => null);
        if (now?.lastApply && now.lastApply.at >= asked && !now.lastApply.applied)
          throw new Error(`not applied: ${now.lastApply.message}`);
        if (now && !now.restartPending) break;
        if (Date.now() > deadline) throw new Error('the gateway did not come back within 2 minutes: see its mail log');
      }
      setNote(`applied ${r.changes.length} change(s)`);
      current.reload();
    } catch (e) {
      setNote(e instanceof ApiFailure ? `${e.message} (${e.code})` : String(e));
    }
  };
  return (
    <div className="settings">
      <p className="muted">
        {current.data.file}
        {current.data.restartPending ? ' — saved changes are not applied yet ' : ''}
        {current.data.restartPending && (
          <button type="button" onClick={apply}>
            Apply now
          </button>
        )}
      </p>
      <div className="actions" role="toolbar" aria-label="Settings actions">
        <button type="button" disabled={!check?.valid || !check.changes.length} onClick={() => setConfirming(true)}>
          Review and save ({check?.changes.length ?? 0} change{check?.changes.length === 1 ? '' : 's'})
        </button>
        {check && !check.valid && (
          <span className="error" role="status">
            {check.errors.length} error(s): fix them to save
          </span>
        )}
      </div>
      {note && <p role="status">{note}</p>}
      {confirming && check && (
        <section className="diff" aria-label="Changes to save">
          <h2>Changes</h2>
          <table>
            <thead>
              <tr>
                <th>Setting</th>
                <th>Before</th>
                <th>After</th>
              </tr>
            </thead>
            <tbody>
              {check.changes.map((c) => (
                <tr key={c.path}>
                  <td>{c.path}</td>
                  <td className="pre">{JSON.stringify(c.before)}</td>
                  <td className="pre">{JSON.stringify(c.after)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <button type="button" onClick={save}>
            Save
          </button>
          <button type="button" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </section>
      )}
      {sections.map(([name, s]) => (
        <details key={name} open={check?.errors.some((e) => e.path.startsWith(name)) || undefined}>
          <summary>
            {name} <span className="muted">{s.description ?? plain(s)?.description ?? ''}</span>
          </summary>
          <Field
            name={name}
            path={[name]}
            schema={s}
            doc={doc}
            errors={check?.errors ?? []}
            onChange={(p, v) => setDoc(setIn(doc, p, v))}
            depth={0}
          />
        </details>
      ))}
    </div>
  );
}
