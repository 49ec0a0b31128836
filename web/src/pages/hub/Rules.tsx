// Outbreak rules the hub publishes: drafts (any analyst), publication, level changes and retirement
// (operators and admins). Every publication is a signed bundle every registered gateway has within
// seconds; retiring or lowering a rule releases the mail it held on the gateways.
import { useState, type FormEvent } from 'react';
import { api, ApiFailure, type Session } from '../../api.ts';
import { fmtTime, useLoad } from '../../load.ts';

const CATEGORIES = ['phish', 'malware', 'virus', 'scam', 'other'];
const EXAMPLE = '{ "attachment": { "extension": ["iso"] } }';

export function Rules({ session }: { session: Session }) {
  const r = useLoad<{ rules: any[]; bundles: any[]; publicKey: string }>('/api/v1/rules');
  // what outbreak intelligence saw for the rules it drafted
  const intel = useLoad<{ drafts: any[] }>('/api/v1/intelligence/drafts');
  const evidence = new Map<string, any>((intel.data?.drafts ?? []).map((d) => [d.ruleId, d]));
  const [form, setForm] = useState({ level: '4', category: 'phish', description: '', condition: '' });
  const [status, setStatus] = useState<string | null>(null);
  const canPublish = session.role === 'admin' || session.role === 'operator';
  const run = async (what: string, fn: () => Promise<any>) => {
    try {
      const x = await fn();
      const b = x.bundle;
      setStatus(`${what}${b ? `: bundle version ${b.version} (${b.rules} rules) is on its way to every gateway` : ''}`);
      r.reload();
    } catch (e) {
      setStatus(e instanceof ApiFailure ? `${what}: ${e.message} (${e.code})` : String(e));
    }
  };
  const draft = (e: FormEvent) => {
    e.preventDefault();
    let condition: unknown;
    try {
      condition = JSON.parse(form.condition);
    } catch {
      setStatus('the condition is not JSON');
      return;
    }
    void run('drafted', () =>
      api('POST', '/api/v1/rules', {
        level: Number(form.level),
        category: form.category,
        description: form.description,
        condition,
      }),
    );
  };
  return (
    <>
      <form className="inline rule-form" onSubmit={draft} aria-label="Draft a rule">
        <label>
          Level
          <select value={form.level} onChange={(e) => setForm({ ...form, level: e.target.value })}>
            {[1, 2, 3, 4, 5].map((l) => (
              <option key={l}>{l}</option>
            ))}
          </select>
        </label>
        <label>
          Category
          <select value={form.category} onChange={(e) => setForm({ ...form, category: e.target.value })}>
            {CATEGORIES.map((c) => (
              <option key={c}>{c}</option>
            ))}
          </select>
        </label>
        <label>
          Description
          <input
            value={form.description}
            onChange={(e) => setForm({ ...form, description: e.target.value })}
            required
          />
        </label>
        <label>
          Condition (JSON)
          <input
            value={form.condition}
            placeholder={EXAMPLE}
            onChange={(e) => setForm({ ...form, condition: e.target.value })}
            required
          />
        </label>
        <button type="submit">Draft</button>
      </form>
      {status && (
        <p role="status" className="result">
          {status}
        </p>
      )}
      {r.error && <p className="error">{r.error}</p>}
      {r.data && (
        <>
          <table aria-label="rules">
            <thead>
              <tr>
                <th>Rule</th>
                <th>Level</th>
                <th>Category</th>
                <th>Description</th>
                <th>Condition</th>
                <th>State</th>
                {canPublish && <th />}
              </tr>
            </thead>
            <tbody>
              {r.data.rules.map((x) => (
                <tr key={x.id} data-status={x.status}>
                  <td>{x.id}</td>
                  <td>
                    {canPublish && x.status === 'published' ? (
                      <select
                        aria-label={`level of ${x.id}`}
                        value={x.level}
                        onChange={(e) =>
                          run(`${x.id} level ${e.target.value}`, () =>
                            api('PATCH', `/api/v1/rules/${x.id}`, { level: Number(e.target.value) }),
                          )
                        }
                      >
                        {[1, 2, 3, 4, 5].map((l) => (
                          <option key={l}>{l}</option>
                        ))}
                      </select>
                    ) : (
                      x.level
                    )}
                  </td>
                  <td>{x.category}</td>
                  <td>
                    {x.description}
                    {evidence.has(x.id) && (
                      <div className="muted" data-evidence>
                        drafted from a burst: {evidence.get(x.id).evidence.messages} messages on{' '}
                        {evidence.get(x.id).evidence.gateways.length} gateways (baseline{' '}
                        {evidence.get(x.id).evidence.baselinePerHour}/h), {evidence.get(x.id).evidence.flagged} held,
                        confidence {evidence.get(x.id).confidence}
                        {evidence.get(x.id).evidence.sampleSubjects.length > 0 &&
                          `; e.g. “${evidence.get(x.id).evidence.sampleSubjects[0]}”`}
                      </div>
                    )}
                  </td>
                  <td className="pre">{JSON.stringify(x.condition)}</td>
                  <td>
                    {x.status}
                    <div className="muted">
                      by {x.publishedBy ?? x.createdBy} {fmtTime(x.publishedAt ?? x.createdAt)}
                    </div>
                  </td>
                  {canPublish && (
                    <td>
                      {x.status === 'draft' && (
                        <button
                          type="button"
                          onClick={() =>
                            run(`${x.id} published`, () => api('POST', '/api/v1/rules/publish', { ids: [x.id] }))
                          }
                        >
                          Publish
                        </button>
                      )}{' '}
                      {(x.status === 'draft' || x.status === 'published') && (
                        <button
                          type="button"
                          onClick={() =>
                            run(`${x.id} ${x.status === 'draft' ? 'rejected' : 'retired'}`, () =>
                              api('POST', `/api/v1/rules/${x.id}/retire`),
                            )
                          }
                        >
                          {x.status === 'draft' ? 'Reject' : 'Retire'}
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
          <h2>Published bundles</h2>
          <p className="muted">
            Signed with the hub’s key {r.data.publicKey.slice(0, 16)}… (gateways pin it at registration).
          </p>
          <table aria-label="bundles">
            <thead>
              <tr>
                <th>Version</th>
                <th>Published</th>
                <th>By</th>
                <th>Rules</th>
              </tr>
            </thead>
            <tbody>
              {r.data.bundles.map((b) => (
                <tr key={b.version}>
                  <td>{b.version}</td>
                  <td>{fmtTime(b.publishedAt)}</td>
                  <td>{b.publishedBy}</td>
                  <td>{b.rules}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </>
  );
}
