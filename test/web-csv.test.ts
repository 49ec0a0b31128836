// The web UI's CSV export: RFC 4180 quoting, and no formula injection from message data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toCsv } from '../web/src/csv.ts';

test('CSV: quoted fields, doubled quotes, CRLF, formulas defused', () => {
  assert.equal(toCsv([]), '');
  const csv = toCsv([
    { url: 'https://a.test/?q="x"', clicks: 3, note: null },
    { url: '=HYPERLINK("http://evil.test","click")', clicks: 1, note: '+1' },
    { url: '@SUM(A1)', clicks: 0, note: '-2' },
  ]);
  assert.equal(
    csv,
    [
      '"url","clicks","note"',
      '"https://a.test/?q=""x""","3",""',
      `"'=HYPERLINK(""http://evil.test"",""click"")","1","'+1"`,
      `"'@SUM(A1)","0","'-2"`,
      '',
    ].join('\r\n'),
  );
});
