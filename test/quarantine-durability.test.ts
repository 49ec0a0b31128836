// No message is lost when the gateway is killed during a bulk release from the Outbreak quarantine:
// after kill -9 and a restart, every message that got a 250 is delivered or still held, and once the
// rest is released every one of them reaches the downstream server and is tracked as delivered.
//
// Two kills: one while the release is being committed (some index rows gone, some not), one while the
// released messages are being delivered (some at the sink, not all).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import path from 'node:path';
import { freePort, hasBinary, startSmtpSink, tempDir } from './helpers/peers.ts';
import { spawnGateway, testConfig, writeTestConfig } from './helpers/gateway.ts';
import { generateKeyPair, signBundle } from '../src/outbreak/bundle.ts';
import { readAdminToken } from '../src/api/token.ts';

const skip = hasBinary('smtp-sink') && hasBinary('python3') ? false : 'smtp-sink or python3 missing (run .ci/run)';

/** Messages to hold and then release in bulk. */
const COUNT = 400;
/** Second kill: released messages (sink dump files) to wait for. */
const KILL_AFTER = 20;

/**
 * Sends `count` messages over `workers` sessions; prints "OK <id>" for every 250. Each message carries
 * its id in the subject and the body, and ends with an END line so that a dump can be told complete.
 */
const SENDER = `
import smtplib, sys, threading
port, count, workers = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
lock = threading.Lock()
def worker(w):
    ids = [f'rel-{w}-{i}' for i in range(w, count, workers)]
    tries = 0
    while ids and tries < 5:
        try:
            s = smtplib.SMTP('127.0.0.1', port, timeout=30)
            while ids:
                mid = ids[0]
                msg = (f'Subject: {mid}\\r\\nFrom: a@src.test\\r\\nTo: bob@dst.test\\r\\nContent-Type: text/html\\r\\n\\r\\n'
                       f'<p>unique {mid}</p><a href="http://x.hold.test/login">x</a>\\r\\n<p>END {mid}</p>\\r\\n')
                s.sendmail('a@src.test', ['bob@dst.test'], msg.encode())
                with lock:
                    sys.stdout.write('OK ' + mid + '\\n')
                    sys.stdout.flush()
                ids.pop(0)
            s.quit()
        except Exception as e:
            tries += 1
            sys.stderr.write(f'worker {w}: {e}\\n')
threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
for t in threads: t.start()
for t in threads: t.join()
`;

test(
  'kill -9 during a bulk release: each accepted message is delivered or still held, never lost',
  { skip, timeout: 120_000 },
  async (t) => {
    const sink = await startSmtpSink({ dump: true });
    const dir = tempDir('bw-qcrash-');
    const feed = path.join(dir, 'feed');
    mkdirSync(feed);
    const keys = generateKeyPair();
    const bundle = {
      version: 1,
      published: new Date().toISOString(),
      rules: [
        {
          id: 'OUTBREAK_HOLD',
          level: 4,
          category: 'phish',
          description: 'bulk release crash test',
          published: new Date().toISOString(),
          condition: { url: { host: ['.hold.test'] } },
        },
      ],
    };
    writeFileSync(path.join(feed, 'b.json'), JSON.stringify(signBundle(bundle, keys.privateKey)));
    const inPort = await freePort();
    const adminPort = await freePort();
    const doc = testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      admin: { host: '127.0.0.1', port: adminPort },
      outbreakFilters: { adaptiveRules: false, ruleFeed: { dir: './feed', publicKey: keys.publicKey } },
    });
    (doc.listeners as any[])[0].port = inPort;
    (doc.listeners as any[]).splice(1, 1);
    const { file } = writeTestConfig(doc, dir);
    const dataDir = path.join(dir, 'data');
    let gw = await spawnGateway(file);

    const api = async (method: string, route: string, body?: unknown): Promise<any> => {
      const r = await fetch(`http://127.0.0.1:${adminPort}/api/v1${route}`, {
        method,
        headers: {
          authorization: `Bearer ${readAdminToken(dataDir)}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const json = await r.json();
      if (!r.ok) throw new Error(`${method} ${route}: ${r.status} ${JSON.stringify(json)}`);
      return json;
    };
    /** Held in the Outbreak quarantine: id (the subject) → MID. */
    const held = async (): Promise<Map<string, number>> => {
      const r = (await api('GET', '/quarantines/outbreak/messages?limit=10000')) as {
        messages: Array<{ mid: number; subject: string }>;
      };
      return new Map(r.messages.map((m) => [m.subject, m.mid]));
    };
    /**
     * Delivered: id → complete transactions at the sink. smtp-sink deletes the dump of a transaction
     * cut short by a lost connection; one still in progress lacks the END line and is not counted.
     */
    const delivered = (): Map<string, number> => {
      const out = new Map<string, number>();
      for (const m of sink.messages()) {
        const id = /unique (rel-\d+-\d+)/.exec(m.body)?.[1];
        if (id && m.body.includes(`END ${id}`)) out.set(id, (out.get(id) ?? 0) + 1);
      }
      return out;
    };
    const sinkFiles = () => readdirSync(sink.dir!).length;
    const accepted = new Set<string>();
    /** id → MID, from the quarantine listing before the first release */
    let mids = new Map<string, number>();
    /** accepted messages found neither delivered nor held after a restart */
    const lost = new Set<string>();

    /** kill -9 once `when` says so, polling as fast as the event loop turns; returns what `when` saw last. */
    const killWhen = async (when: () => string | null, what: string): Promise<string> => {
      const deadline = Date.now() + 30_000;
      let seen: string | null;
      while (!(seen = when())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setImmediate(r));
      }
      await kill(gw.proc);
      // smtp-sink notices the lost connections and deletes their unfinished dumps
      await new Promise((r) => setTimeout(r, 300));
      return seen;
    };

    /**
     * Restarts after a kill and waits until the gateway is idle; asserts that every accepted message is
     * delivered or held, and never both.
     */
    const restartAndCheck = async (tc: TestContext, label: string): Promise<void> => {
      gw = await spawnGateway(file);
      tc.diagnostic(`${label}: ${(await held()).size} held right after the restart`);
      let h = new Map<string, number>();
      let d = new Map<string, number>();
      const left = () => [...accepted].filter((id) => !h.has(id) && !d.has(id));
      // Done when nothing is missing and the queue is empty, or (to fail fast) the queue stays empty 3 s.
      let idleSince = 0;
      await waitAsync(
        async () => {
          h = await held();
          d = delivered();
          const queue = ((await api('GET', '/queue')) as { messages: unknown[] }).messages.length;
          if (queue) idleSince = 0;
          else idleSince ||= Date.now();
          return queue === 0 && (left().length === 0 || Date.now() - idleSince > 3000);
        },
        60_000,
        `${label}: recovery`,
      ).catch(() => {});
      h = await held();
      d = delivered();
      // (a message lost at an earlier kill is reported there, not again)
      const missing = left().filter((id) => !lost.has(id));
      for (const id of missing) lost.add(id);
      if (missing.length)
        tc.diagnostic(`${label}: MISSING ${missing.map((id) => `${id} (MID ${mids.get(id)})`).join(', ')}`);
      assert.deepEqual(missing, [], `${label}: accepted but neither delivered nor held after the restart`);
      const dups = [...d].filter(([, n]) => n > 1).map(([id]) => id);
      tc.diagnostic(
        `${label}: after recovery ${d.size} delivered, ${h.size} held, ${dups.length} delivered more than once${
          dups.length ? ` (${dups.slice(0, 10).join(', ')})` : ''
        }`,
      );
      // Never both: a release queues the removal of the index row before the rescan starts, and the store
      // commits in order; delivery needs the rescan, a durable spool write and an SMTP transaction, so the
      // row is committed first (in practice: nothing in gateway.ts waits for it).
      assert.deepEqual(
        [...h.keys()].filter((id) => d.has(id)),
        [],
        `${label}: delivered and still held`,
      );
      assert.doesNotMatch(gw.output(), /quarantine file .* is missing/);
      assert.doesNotMatch(gw.output(), /pipeline error/);
    };

    try {
      await waitAsync(async () => (await api('GET', '/outbreak/status')).outbreakRules.version === 1, 10_000, 'rules');

      // 1. hold COUNT messages
      const sender = spawn('python3', ['-c', SENDER, String(inPort), String(COUNT), '4'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let buf = '';
      let senderErr = '';
      sender.stdout!.on('data', (d) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.startsWith('OK ')) accepted.add(line.slice(3));
        }
      });
      sender.stderr!.on('data', (d) => (senderErr += d));
      if (sender.exitCode === null) await once(sender, 'exit');
      assert.equal(accepted.size, COUNT, `every message should get a 250: ${senderErr}`);
      mids = await waitAsync(
        async () => {
          const h = await held();
          return [...accepted].every((id) => h.has(id)) ? h : null;
        },
        30_000,
        'every accepted message held',
      );
      assert.equal(delivered().size, 0, 'nothing is delivered before the release');

      // 2. release all; kill -9 while the release is being committed: half the index rows are gone
      // (read from the database file, which the gateway's writer thread commits to)
      await t.test('kill -9 while the release is committed', async (tc) => {
        const peek = new DatabaseSync(path.join(dataDir, 'breakwater.db'), { readOnly: true });
        const rows = () =>
          (peek.prepare("select count(*) as n from quarantine where quarantine = 'outbreak'").get() as { n: number }).n;
        let answer: unknown = null;
        const releasing = api('POST', '/quarantines/outbreak/release', { all: true }).then(
          (r) => (answer = r),
          (err) => (answer = err),
        );
        const seen = await killWhen(() => {
          const n = rows();
          return n <= COUNT / 2 ? `${n} index rows left, ${sinkFiles()} sink file(s)` : null;
        }, 'the release to commit');
        await releasing;
        peek.close();
        tc.diagnostic(`kill -9 at ${seen}; ${delivered().size} delivered; release request ${answered(answer)}`);
        await restartAndCheck(tc, 'first kill');
      });

      // 3. release what is still held (by rule); kill -9 once KILL_AFTER of them reached the sink
      await t.test('kill -9 while released messages are delivered', async (tc) => {
        const before = await held();
        if (!before.size) {
          tc.diagnostic('nothing left held after the first kill: no second release');
          return;
        }
        const base = sinkFiles();
        const deliveredBefore = delivered();
        let answer: unknown = null;
        const releasing = api('POST', '/quarantines/outbreak/release', { rule: 'OUTBREAK_HOLD' }).then(
          (r) => (answer = r),
          (err) => (answer = err),
        );
        const seen = await killWhen(() => {
          const n = sinkFiles() - base;
          return n >= Math.min(KILL_AFTER, before.size) ? `${n} new sink file(s)` : null;
        }, 'released messages at the sink');
        await releasing;
        const now = delivered();
        const released = [...before.keys()].filter((id) => now.has(id) && !deliveredBefore.has(id)).length;
        tc.diagnostic(
          `kill -9 at ${seen}: ${released} of ${before.size} released messages delivered; release request ${answered(answer)}`,
        );
        assert.ok(released < before.size || before.size <= KILL_AFTER, 'the kill came before every delivery');
        await restartAndCheck(tc, 'second kill');
      });

      // 4. release the rest: every accepted message reaches the sink and is tracked as delivered
      await t.test('after the last release every message is delivered', async () => {
        const h = await held();
        if (h.size) {
          const r = await api('POST', '/quarantines/outbreak/release', { all: true });
          assert.equal(r.count, h.size);
        }
        let d = new Map<string, number>();
        let idleSince = 0;
        await waitAsync(
          async () => {
            d = delivered();
            const queue = ((await api('GET', '/queue')) as { messages: unknown[] }).messages.length;
            if (queue) idleSince = 0;
            else idleSince ||= Date.now();
            return [...accepted].every((id) => d.has(id)) || (idleSince > 0 && Date.now() - idleSince > 3000);
          },
          30_000,
          'every accepted message delivered',
        ).catch(() => {});
        assert.deepEqual(
          [...accepted].filter((id) => !d.has(id)),
          [],
          'never delivered',
        );
        assert.equal((await held()).size, 0);
        const statuses = new Map<number, string>();
        const notDelivered = () =>
          [...accepted]
            .filter((id) => statuses.get(mids.get(id)!) !== 'delivered')
            .map((id) => `${id} (MID ${mids.get(id)}): ${statuses.get(mids.get(id)!)}`);
        await waitAsync(
          async () => {
            const r = (await api('GET', '/tracking/messages?limit=1000')) as {
              messages: Array<{ mid: number; status: string }>;
            };
            for (const m of r.messages) statuses.set(m.mid, m.status);
            return notDelivered().length === 0;
          },
          15_000,
          'tracking status delivered',
        ).catch(() => {});
        assert.deepEqual(notDelivered(), [], 'tracking status');
        // A release adds a note (X-Breakwater-Quarantine), also to copies resumed after a crash (the
        // note is recovered from the release event).
        const unnoted = new Set<string>();
        for (const m of sink.messages()) {
          const id = /unique (rel-\d+-\d+)/.exec(m.body)?.[1];
          if (id && !/^X-Breakwater-Quarantine: released from Outbreak by /m.test(m.body)) unnoted.add(id);
        }
        assert.deepEqual([...unnoted], [], 'delivered without the release note');
      });
    } finally {
      if (gw.proc.exitCode === null && gw.proc.signalCode === null) {
        gw.proc.kill('SIGTERM');
        await once(gw.proc, 'exit');
      }
      await sink.stop();
    }
  },
);

async function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGKILL');
  await once(proc, 'exit');
}

function answered(answer: unknown): string {
  if (!answer) return 'not answered';
  if (answer instanceof Error) return `failed (${answer.message})`;
  return `answered (${(answer as { count: number }).count} released)`;
}

async function waitAsync<T>(fn: () => Promise<T | null | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
