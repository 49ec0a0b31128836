// CSV export of report tables: RFC 4180 (every field quoted, quotes doubled, CRLF), and a cell that a
// spreadsheet would read as a formula (= + - @, tab, CR first) gets a leading apostrophe: a URL or a
// subject from a message must not run in the analyst's spreadsheet (CSV injection).
export function toCsv(rows: ReadonlyArray<Record<string, unknown>>): string {
  if (!rows.length) return '';
  const cols = Object.keys(rows[0]);
  const cell = (v: unknown): string => {
    let s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
    if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
    return `"${s.replace(/"/g, '""')}"`;
  };
  return [cols.map(cell).join(','), ...rows.map((r) => cols.map((c) => cell(r[c])).join(','))].join('\r\n') + '\r\n';
}
