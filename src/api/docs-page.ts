// GET /api/docs: the OpenAPI document rendered as one self-contained HTML page. No script and nothing
// fetched from elsewhere (the route's Content-Security-Policy allows inline styles only); every string from
// the document is escaped.
import type { MediaTypes, OpenApiDocument, Operation, Parameter, Ref, Response, Schema } from './openapi.ts';

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

/** Escaped text with `code` spans; lines starting with "- " become a list. */
function text(s: string | undefined): string {
  if (!s) return '';
  const inline = (t: string) => escapeHtml(t).replace(/`([^`]+)`/g, '<code>$1</code>');
  const lines = s.split('\n');
  if (lines.every((l) => l.startsWith('- ')))
    return `<ul>${lines.map((l) => `<li>${inline(l.slice(2))}</li>`).join('')}</ul>`;
  return lines.map(inline).join('<br>');
}

function anchor(kind: string, name: string): string {
  return `${kind}-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
}

const schemaName = (ref: string) => ref.slice(ref.lastIndexOf('/') + 1);
const literal = (v: unknown) => `<code>${escapeHtml(JSON.stringify(v))}</code>`;

function resolve<T>(doc: OpenApiDocument, v: T | Ref): T {
  if (!v || typeof v !== 'object' || !('$ref' in v) || typeof v.$ref !== 'string') return v as T;
  let target: unknown = doc;
  for (const part of v.$ref.replace(/^#\//, '').split('/')) target = (target as Record<string, unknown>)?.[part];
  if (target === undefined) return v as T;
  // OpenAPI 3.1: a reference's own description overrides the target's.
  return (v.description ? { ...(target as object), description: v.description } : target) as T;
}

/** One line saying what a value is: `integer`, `string | null`, a link to a component schema, `X[]`… */
function typeOf(s: Schema): string {
  if (s.$ref) {
    const name = schemaName(s.$ref);
    return `<a href="#${anchor('schema', name)}">${escapeHtml(name)}</a>`;
  }
  if (s.const !== undefined) return literal(s.const);
  if (s.enum) return s.enum.map(literal).join(' | ');
  if (s.anyOf) return s.anyOf.map(alternative).join(' | ');
  if (s.allOf) return s.allOf.map(alternative).join(' &amp; ');
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  if (!types.length) {
    if (s.properties) return 'object';
    if (s.pattern) return 'string';
    if (s.required) return `required ${s.required.map((r) => `<code>${escapeHtml(r)}</code>`).join(', ')}`;
    return 'any';
  }
  return types.map((t) => (t === 'array' && s.items ? `${typeOf(s.items)}[]` : escapeHtml(t))).join(' | ');
}

/** A member of anyOf/allOf: its type and, in brackets, its constraints. */
function alternative(s: Schema): string {
  const c = constraintList(s);
  return `${typeOf(s)}${c.length ? ` (${c.join(', ')})` : ''}`;
}

function constraints(s: Schema): string {
  const c = constraintList(s);
  return c.length ? `<div class="c">${c.join(', ')}</div>` : '';
}

function constraintList(s: Schema): string[] {
  const c: string[] = [];
  if (s.format) c.push(`format ${escapeHtml(s.format)}`);
  if (s.pattern) c.push(`pattern <code>${escapeHtml(s.pattern)}</code>`);
  if (s.minimum !== undefined) c.push(`≥ ${s.minimum}`);
  if (s.maximum !== undefined) c.push(`≤ ${s.maximum}`);
  if (s.minItems !== undefined) c.push(`items ≥ ${s.minItems}`);
  if (s.maxItems !== undefined) c.push(`items ≤ ${s.maxItems}`);
  if (s.maxLength !== undefined) c.push(`length ≤ ${s.maxLength}`);
  if (s.default !== undefined) c.push(`default ${literal(s.default)}`);
  return c;
}

/** Properties of an object schema (following allOf), with nested inline objects expanded. */
function properties(doc: OpenApiDocument, s: Schema, depth: number): string {
  const rows: string[] = [];
  const parts = s.allOf ?? [s];
  for (const part of parts) {
    if (part.$ref) {
      rows.push(`<tr><td colspan="3">all of ${typeOf(part)}</td></tr>`);
      continue;
    }
    for (const [name, prop] of Object.entries(part.properties ?? {})) {
      const required = part.required?.includes(name);
      const nested = depth < 4 ? inlineObject(prop) : undefined;
      rows.push(
        `<tr><td><code>${escapeHtml(name)}</code>${required ? '' : ' <span class="opt">optional</span>'}</td>` +
          `<td>${typeOf(prop)}${constraints(prop)}</td><td>${text(prop.description)}</td></tr>` +
          (nested ? `<tr><td></td><td colspan="2">${properties(doc, nested, depth + 1)}</td></tr>` : ''),
      );
    }
    if (!part.properties && part.required)
      rows.push(`<tr><td colspan="3">requires ${part.required.map((r) => literal(r)).join(', ')}</td></tr>`);
  }
  return rows.length ? `<table class="props"><tbody>${rows.join('')}</tbody></table>` : '';
}

/** The inline object schema a property holds directly or as array items (component schemas are linked). */
function inlineObject(s: Schema): Schema | undefined {
  if (s.properties || s.allOf) return s;
  if (s.items && (s.items.properties || s.items.allOf)) return s.items;
  return undefined;
}

function schemaBlock(doc: OpenApiDocument, s: Schema): string {
  const nested = inlineObject(s);
  return (
    `<div class="t">${typeOf(s)}${constraints(s)}</div>` +
    (s.description ? `<p>${text(s.description)}</p>` : '') +
    (nested ? properties(doc, nested, 0) : '')
  );
}

function content(doc: OpenApiDocument, media: MediaTypes | undefined): string {
  return Object.entries(media ?? {})
    .map(([type, { schema }]) => `<div class="mt">${escapeHtml(type)}</div>${schemaBlock(doc, schema)}`)
    .join('');
}

function operation(doc: OpenApiDocument, method: string, path: string, o: Operation): string {
  const isPublic = Array.isArray(o.security) && o.security.length === 0;
  const params = (o.parameters ?? []).map((p) => resolve<Parameter>(doc, p));
  const paramRows = params
    .map(
      (p) =>
        `<tr><td><code>${escapeHtml(p.name)}</code>${p.required ? '' : ' <span class="opt">optional</span>'}</td>` +
        `<td>${escapeHtml(p.in)}</td><td>${typeOf(p.schema)}${constraints(p.schema)}</td><td>${text(p.description)}</td></tr>`,
    )
    .join('');
  const responses = Object.entries(o.responses)
    .map(([status, r]) => {
      const res = resolve<Response>(doc, r);
      return `<tr><td class="st s${escapeHtml(status[0])}">${escapeHtml(status)}</td><td>${text(res.description)}${content(doc, res.content)}</td></tr>`;
    })
    .join('');
  return (
    `<article id="${anchor('op', o.operationId)}">` +
    `<h3><span class="m ${escapeHtml(method)}">${escapeHtml(method.toUpperCase())}</span> <code>${escapeHtml(path)}</code>` +
    `<span class="auth">${isPublic ? 'public' : 'bearer token'}</span></h3>` +
    `<p class="sum">${text(o.summary)}</p>` +
    (o.description ? `<p>${text(o.description)}</p>` : '') +
    (params.length
      ? `<h4>Parameters</h4><table><thead><tr><th>name</th><th>in</th><th>type</th><th>description</th></tr></thead><tbody>${paramRows}</tbody></table>`
      : '') +
    (o.requestBody
      ? `<h4>Request body${o.requestBody.required ? '' : ' (optional)'}</h4>${text(o.requestBody.description)}${content(doc, o.requestBody.content)}`
      : '') +
    `<h4>Responses</h4><table><tbody>${responses}</tbody></table>` +
    `</article>`
  );
}

const STYLE = `
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:1.5rem}
h1{margin:.2rem 0}h2{margin-top:2.5rem;border-bottom:2px solid #ccd;padding-bottom:.3rem}
h3{margin:0 0 .3rem;font-size:1.05rem;display:flex;gap:.6rem;align-items:center;flex-wrap:wrap}
h4{margin:.8rem 0 .3rem;font-size:.9rem;text-transform:uppercase;color:#556}
article{background:#fff;border:1px solid #dde;border-radius:6px;padding:.8rem 1rem;margin:1rem 0}
code{font:13px ui-monospace,monospace;background:#eef0f4;padding:0 .25rem;border-radius:3px}
table{border-collapse:collapse;width:100%;font-size:14px}
td,th{border-top:1px solid #e4e6ea;padding:.3rem .5rem;text-align:left;vertical-align:top}
.props{margin:.3rem 0;background:#fafbfc}.props td:first-child{white-space:nowrap}
.m{font:bold 12px ui-monospace,monospace;color:#fff;padding:.15rem .45rem;border-radius:3px;min-width:3.5rem;text-align:center}
.get{background:#2b6cb0}.post{background:#2f855a}.delete{background:#c53030}.put,.patch{background:#b7791f}
.auth{margin-left:auto;font-size:12px;font-weight:normal;color:#667}
.sum{margin:.2rem 0;font-weight:600}.opt{color:#889;font-size:12px}.c{color:#667;font-size:12px}
.mt{font:12px ui-monospace,monospace;color:#667;margin-top:.3rem}.t{margin:.2rem 0}
.st{font-weight:bold;width:3rem}.s2{color:#2f855a}.s4{color:#b7791f}.s5{color:#c53030}
nav>ul{display:grid;grid-template-columns:repeat(auto-fill,minmax(22rem,1fr));gap:.5rem 2rem;padding-left:1.2rem}
nav li{overflow-wrap:anywhere}.props td:first-child{width:11rem}
`;

export function renderDocsPage(doc: OpenApiDocument): string {
  const byTag = new Map<string, string[]>(doc.tags.map((t) => [t.name, []]));
  const toc = new Map<string, string[]>(doc.tags.map((t) => [t.name, []]));
  for (const [path, item] of Object.entries(doc.paths))
    for (const method of METHODS) {
      const o = item[method];
      if (!o) continue;
      const tag = o.tags[0] ?? 'Other';
      if (!byTag.has(tag)) {
        byTag.set(tag, []);
        toc.set(tag, []);
      }
      byTag.get(tag)!.push(operation(doc, method, path, o));
      toc
        .get(tag)!
        .push(
          `<li><a href="#${anchor('op', o.operationId)}">${escapeHtml(method.toUpperCase())} ${escapeHtml(path)}</a></li>`,
        );
    }
  const tagDescription = new Map(doc.tags.map((t) => [t.name, t.description]));
  const sections = [...byTag]
    .filter(([, ops]) => ops.length)
    .map(
      ([tag, ops]) =>
        `<section id="${anchor('tag', tag)}"><h2>${escapeHtml(tag)}</h2><p>${text(tagDescription.get(tag))}</p>${ops.join('')}</section>`,
    )
    .join('');
  const nav = [...toc]
    .filter(([, items]) => items.length)
    .map(([tag, items]) => `<li><a href="#${anchor('tag', tag)}">${escapeHtml(tag)}</a><ul>${items.join('')}</ul></li>`)
    .join('');
  const schemas = Object.entries(doc.components.schemas)
    .map(
      ([name, s]) =>
        `<article id="${anchor('schema', name)}"><h3><code>${escapeHtml(name)}</code></h3>${schemaBlock(doc, s)}</article>`,
    )
    .join('');
  const auth = Object.entries(doc.components.securitySchemes)
    .map(
      ([name, s]) => `<li><code>${escapeHtml(name)}</code>: HTTP ${escapeHtml(s.scheme)}. ${text(s.description)}</li>`,
    )
    .join('');
  const title = `${doc.info.title} ${doc.info.version}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body><main>
<h1>${escapeHtml(doc.info.title)} <small>${escapeHtml(doc.info.version)}</small></h1>
<p>${text(doc.info.description)}</p>
<p>OpenAPI ${escapeHtml(doc.openapi)} document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a></p>
<h4>Authentication</h4><ul>${auth}</ul>
<nav><h2>Operations</h2><ul>${nav}<li><a href="#schemas">Schemas</a></li></ul></nav>
${sections}
<section id="schemas"><h2>Schemas</h2>${schemas}</section>
</main></body></html>
`;
}
