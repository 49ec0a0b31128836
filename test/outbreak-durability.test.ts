// No accepted message is lost when the gateway is killed while Outbreak Filters hold and modify mail:
// after kill -9 and a restart, every message that got a 250 is delivered or still held, never gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, hasBinary, startSmtpSink, tempDir, waitFor } from './helpers/peers.ts';
import { spawnGateway, testConfig, writeTestConfig } from './helpers/gateway.ts';
import { generateKeyPair, signBundle } from '../src/outbreak/bundle.ts';
import { readAdminToken } from '../src/api/token.ts';

const skip = hasBinary('smtp-sink') && hasBinary('python3') ? false : 'smtp-sink or python3 missing (run .ci/run)';

/** Sends messages over 4 sessions until killed; prints "OK <id>" for every 250. */
const SENDER = `
import smtplib, sys, threading
port = int(sys.argv[1])
lock = threading.Lock()
def worker(w):
    i = 0
    while True:
        try:
            s = smtplib.SMTP('127.0.0.1', port, timeout=10)
            while True:
                kind = ['hold', 'modify', 'clean'][i % 3]
                mid = f'{kind}-{w}-{i}'
                rcpt = 'mod@dst.test' if kind == 'modify' else 'bob@dst.test'
                link = 'http://x.bad.test/login' if kind != 'clean' else 'http://ok.example.org/'
                msg = f'Subject: {mid}\\r\\nFrom: a@src.test\\r\\nContent-Type: text/html\\r\\n\\r\\n<p>unique {mid}</p><a href="{link}">x</a>\\r\\n'
                s.sendmail('a@src.test', [rcpt], msg.encode())
                with lock:
                    sys.stdout.write('OK ' + mid + '\\n')
                    sys.stdout.flush()
                i += 1
        except Exception:
            return
for w in range(4):
    threading.Thread(target=worker, args=(w,), daemon=True).start()
threading.Event().wait()
`;

test(
  'kill -9 while messages are held and modified: each accepted message is delivered or still held',
  { skip, timeout: 180_000 },
  async (t) => {
    const sink = await startSmtpSink({ dump: true });
    const dir = tempDir('bw-obcrash-');
    const feed = path.join(dir, 'feed');
    mkdirSync(feed);
    const keys = generateKeyPair();
    const bundle = {
      version: 1,
      published: new Date().toISOString(),
      rules: [
        {
          id: 'OUTBREAK_CRASH',
          level: 4,
          category: 'phish',
          description: 'crash test',
          published: new Date().toISOString(),
          condition: { url: { host: ['.bad.test'] } },
        },
      ],
    };
    writeFileSync(path.join(feed, 'b.json'), JSON.stringify(signBundle(bundle, keys.privateKey)));
    const inPort = await freePort();
    const doc = testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      admin: { host: '127.0.0.1', port: await freePort() },
      outbreakFilters: { adaptiveRules: false, ruleFeed: { dir: './feed', publicKey: keys.publicKey } },
      policies: {
        incoming: [
          {
            name: 'modify',
            match: ['mod@dst.test'],
            outbreakFilters: { mode: 'custom', deliverWithoutQuarantine: true },
          },
          { name: 'default' },
        ],
      },
    });
    (doc.listeners as any[])[0].port = inPort;
    (doc.listeners as any[]).splice(1, 1);
    const { file } = writeTestConfig(doc, dir);
    let gw = await spawnGateway(file);
    const accepted = new Set<string>();
    try {
      // wait until the rules are active before loading
      const admin = () => (doc.admin as { port: number }).port;
      await waitAsync(
        async () => {
          const token = readAdminToken(path.join(dir, 'data'));
          const r = await fetch(`http://127.0.0.1:${admin()}/api/v1/outbreak/status`, {
            headers: { authorization: `Bearer ${token}` },
          }).then((x) => x.json() as Promise<any>);
          return r.outbreakRules.version === 1;
        },
        10_000,
        'rules',
      );
      const sender = spawn('python3', ['-c', SENDER, String(inPort)], { stdio: ['ignore', 'pipe', 'ignore'] });
      let buf = '';
      sender.stdout!.on('data', (d) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.startsWith('OK ')) accepted.add(line.slice(3));
        }
      });
      await waitFor(() => accepted.size >= 150, 60_000, '150 accepted messages');
      gw.proc.kill('SIGKILL');
      await once(gw.proc, 'exit');
      sender.kill('SIGKILL');
      await once(sender, 'exit');
      t.diagnostic(`${accepted.size} messages got a 250 before kill -9`);

      gw = await spawnGateway(file);
      const token = readAdminToken(path.join(dir, 'data'))!;
      const held = async (): Promise<Set<string>> => {
        const r = (await fetch(`http://127.0.0.1:${admin()}/api/v1/quarantines/outbreak/messages?limit=10000`, {
          headers: { authorization: `Bearer ${token}` },
        }).then((x) => x.json())) as { messages: Array<{ subject: string }> };
        return new Set(r.messages.map((m) => m.subject));
      };
      const deliveredIds = (): Set<string> => {
        const out = new Set<string>();
        for (const m of sink.messages()) {
          const id = /unique ([a-z]+-\d+-\d+)/.exec(m.body)?.[1];
          if (id) out.add(id);
        }
        return out;
      };
      const missing = await waitAsync(
        async () => {
          const h = await held();
          const d = deliveredIds();
          const left = [...accepted].filter((id) => !h.has(id) && !d.has(id));
          return left.length === 0 ? ([] as string[]) : null;
        },
        60_000,
        'every accepted message delivered or held',
      ).catch(async () => {
        const h = await held();
        const d = deliveredIds();
        return [...accepted].filter((id) => !h.has(id) && !d.has(id));
      });
      assert.deepEqual(missing, [], `accepted but neither delivered nor held: ${missing.join(', ')}`);
      // held messages are exactly the "hold" ones; "modify" ones arrive modified
      const h = await held();
      for (const id of h) assert.match(id, /^hold-/);
      const modified = sink.messages().filter((m) => /unique modify-/.test(m.body));
      assert.ok(modified.length > 0);
      for (const m of modified) assert.match(m.body, /X-Breakwater-Outbreak-Status: yes, level 4/);
    } finally {
      if (gw.proc.exitCode === null) {
        gw.proc.kill('SIGTERM');
        await once(gw.proc, 'exit');
      }
      await sink.stop();
    }
  },
);

async function waitAsync<T>(fn: () => Promise<T | null | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
