// The quick start tells the truth about anti-virus (issue 10): examples/quickstart.yaml has
// `antivirus.clamd: auto`. With no clamd at the probed socket, `breakwater start` and `breakwater status`
// say "anti-virus: off (no clamd at …)" and mail still flows; with a real clamd on the probed socket
// (the test's own, on a custom path), EICAR is caught and held in the virus quarantine.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import YAML from 'yaml';
import { freePort, hasBinary, run, swaks, tempDir, waitFor } from './helpers/peers.ts';
import { spawnGateway } from './helpers/gateway.ts';
import { EICAR, hasClamd, startClamd, type TestClamd } from './helpers/clamd.ts';
import { checkConfigFile } from '../src/config/load.ts';
import { resolveAntivirus } from '../src/antivirus/auto.ts';

const root = path.resolve(import.meta.dirname, '..');
const bin = path.join(root, 'bin/breakwater.js');
const QUICKSTART = path.join(root, 'examples/quickstart.yaml');
const skipSwaks = hasBinary('swaks') ? false : 'swaks is not installed (run .ci/run)';
const skipClamd = hasBinary('swaks') && hasClamd() ? false : 'swaks or clamd is not installed (run .ci/run)';

type Spawned = Awaited<ReturnType<typeof spawnGateway>>;
const children: Spawned[] = [];
const clamds: TestClamd[] = [];

after(async () => {
  for (const c of children)
    if (c.proc.exitCode === null) {
      c.proc.kill('SIGTERM');
      await once(c.proc, 'exit');
    }
  for (const c of clamds) await c.stop();
});

/** The quick start config exactly, with free ports, a temp data dir and the given probe sockets. */
async function quickstartCopy(autoSockets: string[]): Promise<{ dir: string; file: string; incoming: number }> {
  const doc = YAML.parse(readFileSync(QUICKSTART, 'utf8'));
  assert.equal(doc.antivirus.clamd, 'auto');
  const incoming = await freePort();
  doc.listeners[0].port = incoming;
  doc.listeners[1].port = await freePort();
  doc.admin.port = await freePort();
  doc.clickTime.port = await freePort();
  doc.dataDir = './data';
  doc.antivirus.autoSockets = autoSockets;
  const dir = tempDir('bw-qs-av-');
  const file = path.join(dir, 'breakwater.yaml');
  writeFileSync(file, YAML.stringify(doc));
  return { dir, file, incoming };
}

async function start(file: string): Promise<Spawned> {
  const gw = await spawnGateway(file);
  children.push(gw);
  await waitFor(() => /anti-virus: .*\n/.test(gw.output()), 10_000, 'anti-virus line');
  return gw;
}

function cli(file: string, ...args: string[]): Promise<{ code: number; out: string }> {
  return run(process.execPath, [bin, ...args, '--config', file]);
}

async function sendEicar(port: number, subject: string): Promise<number> {
  const r = await swaks([
    '-s',
    `127.0.0.1:${port}`,
    '-t',
    'someone@example.test',
    '--header',
    `Subject: ${subject}`,
    '--body',
    EICAR,
  ]);
  assert.equal(r.code, 0, r.out);
  return Number(/queued as MID (\d+)/.exec(r.out)![1]);
}

async function trackStatus(file: string, mid: number): Promise<any> {
  const r = await cli(file, 'track', 'show', String(mid), '--json');
  return r.code === 0 ? JSON.parse(r.out) : null;
}

test('the quick start config asks for clamd: auto, probing the Debian socket', () => {
  const { loaded, errors } = checkConfigFile(QUICKSTART);
  assert.deepEqual(errors, []);
  assert.equal(loaded!.config.antivirus.clamd, 'auto');
  assert.deepEqual(loaded!.config.antivirus.autoSockets, ['/run/clamav/clamd.ctl', '/var/run/clamav/clamd.ctl']);
});

test('clamd: auto without clamd: off, one path per file, never a failed start', async () => {
  const dir = tempDir('bw-qs-probe-');
  mkdirSync(path.join(dir, 'run'));
  symlinkSync(path.join(dir, 'run'), path.join(dir, 'var-run'));
  const { loaded } = checkConfigFile(QUICKSTART);
  const base = loaded!.config;
  // two names of the same missing socket (like /var/run -> /run) are reported once
  const a = path.join(dir, 'run/clamav/clamd.ctl');
  const b = path.join(dir, 'var-run/clamav/clamd.ctl');
  let r = await resolveAntivirus({ ...base, antivirus: { ...base.antivirus, autoSockets: [a, b] } });
  assert.equal(r.state.enabled, false);
  assert.equal(r.config.antivirus.clamd, undefined);
  assert.equal(r.state.summary, `anti-virus: off (no clamd at ${a})`);
  // a leftover file, and a socket that accepts but never answers: off too
  const stale = path.join(dir, 'run/stale.ctl');
  writeFileSync(stale, '');
  const mute = path.join(dir, 'run/mute.ctl');
  const server = net.createServer(() => {});
  await new Promise<void>((resolve) => server.listen(mute, resolve));
  try {
    r = await resolveAntivirus({ ...base, antivirus: { ...base.antivirus, autoSockets: [stale, mute] } });
  } finally {
    server.close();
  }
  assert.equal(r.state.enabled, false);
  assert.equal(r.state.summary, `anti-virus: off (no clamd at ${stale} or ${mute})`);
});

test(
  'quick start without clamd: start and status say "anti-virus: off (no clamd at …)"; mail still flows',
  { skip: skipSwaks },
  async () => {
    const missing = path.join(tempDir('bw-qs-none-'), 'clamav/clamd.ctl');
    const qs = await quickstartCopy([missing]);
    const gw = await start(qs.file);
    assert.match(gw.output(), new RegExp(`anti-virus: off \\(no clamd at ${missing.replace(/[.]/g, '\\.')}\\)\n`));

    const status = await cli(qs.file, 'status');
    assert.equal(status.code, 0, status.out);
    assert.ok(status.out.includes(`anti-virus: off (no clamd at ${missing})`), status.out);
    const json = JSON.parse((await cli(qs.file, 'status', '--json')).out);
    assert.equal(json.antivirus.enabled, false);
    assert.equal(json.antivirus.mode, 'auto');
    assert.equal(json.antivirus.clamd, null);
    assert.deepEqual(json.antivirus.probed, [missing]);
    assert.ok(readFileSync(path.join(qs.dir, 'data/logs/mail.log'), 'utf8').includes('anti-virus: off (no clamd at'));

    const pipeline = await cli(qs.file, 'pipeline', 'show', '--json');
    assert.ok(!JSON.parse(pipeline.out).some((s: any) => s.name === 'antivirus'), pipeline.out);

    // no scanner: EICAR is delivered like any other message (what the status line warns about)
    const mid = await sendEicar(qs.incoming, 'eicar-no-av');
    await waitFor(() => existsSync(path.join(qs.dir, `data/delivered/${mid}.eml`)), 10_000, 'delivered');
  },
);

test(
  'quick start with a clamd on the probed socket: EICAR is caught and held in the virus quarantine',
  { skip: skipClamd },
  async () => {
    const clamd = await startClamd();
    clamds.push(clamd);
    const missing = path.join(tempDir('bw-qs-none-'), 'clamd.ctl');
    const qs = await quickstartCopy([missing, clamd.socket]);
    const gw = await start(qs.file);
    assert.ok(gw.output().includes(`anti-virus: clamd at ${clamd.socket} (found by clamd: auto)\n`), gw.output());

    const json = JSON.parse((await cli(qs.file, 'status', '--json')).out);
    assert.equal(json.antivirus.enabled, true);
    assert.equal(json.antivirus.clamd, clamd.socket);
    const status = await cli(qs.file, 'status');
    assert.ok(status.out.includes(`anti-virus: clamd at ${clamd.socket}`), status.out);

    const infected = await sendEicar(qs.incoming, 'eicar-av');
    const clean = await swaks(['-s', `127.0.0.1:${qs.incoming}`, '-t', 'someone@example.test']);
    assert.equal(clean.code, 0, clean.out);
    const cleanMid = Number(/queued as MID (\d+)/.exec(clean.out)![1]);
    await waitFor(() => existsSync(path.join(qs.dir, `data/delivered/${cleanMid}.eml`)), 10_000, 'clean delivered');
    let rec: any = null;
    for (const deadline = Date.now() + 10_000; rec?.status !== 'quarantined';) {
      assert.ok(Date.now() < deadline, `EICAR not quarantined: ${JSON.stringify(rec)}`);
      await new Promise((r) => setTimeout(r, 100));
      rec = await trackStatus(qs.file, infected);
    }
    const scanned = rec.events.find((e: any) => e.type === 'antivirus.scanned');
    assert.equal(scanned?.verdict, 'infected');
    assert.ok(
      scanned.names.some((n: string) => /EICAR/i.test(n)),
      JSON.stringify(scanned),
    );
    assert.ok(!existsSync(path.join(qs.dir, `data/delivered/${infected}.eml`)));
    const held = await cli(qs.file, 'quarantine', 'list', '--quarantine', 'virus', '--json');
    assert.equal(held.code, 0, held.out);
    assert.ok(held.out.includes(String(infected)), held.out);
    // swaks' own default message (From: root@<hostname>) is scanned clean and scores no threat level
    const cleanRec = await trackStatus(qs.file, cleanMid);
    assert.equal(cleanRec.events.find((e: any) => e.type === 'antivirus.scanned')?.verdict, 'clean');
    assert.equal(
      cleanRec.threatLevel,
      0,
      JSON.stringify(cleanRec.events.find((e: any) => e.type === 'outbreak.scored')),
    );
  },
);
