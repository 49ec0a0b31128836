// The unscannable part of the policy layer: limit findings and a policy's settings in, one action out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../src/config/load.ts';
import type { Config } from '../src/config/schema.ts';
import { decide } from '../src/policy/decide.ts';
import {
  decideUnscannable,
  effectiveUnscannableSettings,
  limitFinding,
  limitsReached,
  parseLimitFindings,
} from '../src/policy/unscannable.ts';
import { parseMessage } from '../src/mime/parse.ts';
import type { StageContext } from '../src/pipeline/stage.ts';
import { testConfig } from './helpers/gateway.ts';

function config(overrides: Record<string, unknown> = {}): Config {
  const v = validateConfig(testConfig(overrides));
  assert.ok(v.config, JSON.stringify(v.errors));
  return v.config;
}

function ctx(c: Partial<StageContext>): StageContext {
  return {
    direction: 'incoming',
    policy: 'default',
    findings: [],
    outbreak: null,
    antivirus: null,
    releasedFrom: [],
    parsed: null,
    ...c,
  } as StageContext;
}

const ok = { stoppedBy: null, failures: [] };

test('incoming mail that reached a limit is held in the virus quarantine, managed by UNSCANNABLE_* ids', () => {
  const v = decide(config(), ok, ctx({ findings: [limitFinding('mime.parse', 'depth', 'depth_limit')] }));
  assert.equal(v.kind, 'quarantine');
  assert.ok(v.kind === 'quarantine');
  assert.deepEqual(
    v.holds.map((h) => [h.quarantine, h.ids]),
    [['virus', ['UNSCANNABLE_DEPTH']]],
  );
});

test('outgoing mail that reached a limit is delivered untagged by default', () => {
  const v = decide(
    config(),
    ok,
    ctx({ direction: 'outgoing', findings: [limitFinding('mime.parse', 'archive_bomb', 'archive_bomb')] }),
  );
  assert.equal(v.kind, 'deliver');
  assert.ok(v.kind === 'deliver');
  assert.equal(v.subjectTag, undefined);
  assert.match(v.reason, /archive_bomb/);
});

test('scan_size, urls and text are recorded but do not count unless a policy lists them', () => {
  const c = config();
  const findings = [limitFinding('outbreak', 'scan_size', 'big'), limitFinding('mime.parse', 'urls', 'url_limit')];
  assert.equal(decide(c, ok, ctx({ findings })).kind, 'deliver');
  const strict = config({
    policies: { incoming: [{ name: 'default', unscannable: { limits: ['scan_size'], action: 'drop' } }] },
  });
  assert.equal(decide(strict, ok, ctx({ findings })).kind, 'drop');
});

test('released from its quarantine, the message is delivered with the tag, never held there again', () => {
  const c = config();
  const findings = [limitFinding('mime.parse', 'encrypted', 'encrypted archive: a.zip')];
  const v = decide(c, ok, ctx({ findings, releasedFrom: ['virus'] }));
  assert.ok(v.kind === 'deliver');
  assert.equal(v.subjectTag, '[UNSCANNABLE] ');
});

test('non-default policies inherit the default policy; disabled only records', () => {
  const c = config({
    policies: {
      incoming: [
        { name: 'vip', match: ['vip@dst.test'] },
        { name: 'lab', match: ['lab@dst.test'], unscannable: { mode: 'disabled' } },
        { name: 'default', unscannable: { action: 'drop', subjectTag: '[X] ' } },
      ],
    },
  });
  assert.equal(effectiveUnscannableSettings(c, 'incoming', 'vip')?.action, 'drop');
  assert.equal(effectiveUnscannableSettings(c, 'incoming', 'lab'), null);
  const f = [limitFinding('mime.parse', 'parts', 'part_limit')];
  assert.equal(decide(c, ok, ctx({ policy: 'lab', findings: f })).kind, 'deliver');
});

test('a parse that failed or timed out from outside the parser counts as a limit', () => {
  assert.deepEqual(
    limitsReached([
      {
        stage: 'mime.parse',
        code: 'stage.failed',
        severity: 'suspicious',
        detail: 'stage mime.parse timed out after 11000 ms',
      },
    ]),
    ['parse_timeout'],
  );
  assert.deepEqual(
    limitsReached([
      { stage: 'mime.parse', code: 'stage.failed', severity: 'suspicious', detail: 'parse worker failed: boom' },
    ]),
    ['parse_error'],
  );
  const s = effectiveUnscannableSettings(config(), 'incoming', 'default')!;
  assert.equal(decideUnscannable([], s, { released: new Set() }).kind, 'none');
});

test('the unscannable quarantine must exist and may not be the Outbreak quarantine', () => {
  const v = validateConfig(
    testConfig({ policies: { incoming: [{ name: 'default', unscannable: { quarantine: 'outbreak' } }] } }),
  );
  assert.equal(v.config, null);
  assert.ok(
    v.errors.some((e) => e.path === 'policies.incoming[0].unscannable.quarantine'),
    JSON.stringify(v.errors),
  );
  const bad = validateConfig(
    testConfig({ policies: { incoming: [{ name: 'default', unscannable: { limits: ['depth', 'nope'] } }] } }),
  );
  assert.ok(
    bad.errors.some((e) => e.path.startsWith('policies.incoming[0].unscannable.limits')),
    JSON.stringify(bad.errors),
  );
});

test("the parser's limits become typed findings: nesting depth and encrypted archives", async () => {
  let body = 'Content-Type: text/plain\r\n\r\nbottom\r\n';
  for (let i = 0; i < 25; i++)
    body = `Content-Type: multipart/mixed; boundary="b${i}"\r\n\r\n--b${i}\r\n${body}--b${i}--\r\n`;
  const parsed = await parseMessage(Buffer.from(`Subject: deep\r\nMIME-Version: 1.0\r\n${body}`));
  assert.deepEqual(
    parseLimitFindings(parsed).map((f) => f.code),
    ['limit.depth'],
  );
});
