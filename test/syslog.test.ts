// The mail log to syslog (log.syslog): RFC 5424 messages over UDP, TCP (octet counting) and to a real
// rsyslogd; lines written while the server is away wait in a bounded queue and arrive once it is back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { formatSyslog } from '../src/tracking/syslog.ts';
import { validateConfig } from '../src/config/load.ts';
import { binary, freePort, hasBinary, startSmtpSink, swaks, tempDir, waitFor } from './helpers/peers.ts';
import { startTestGateway, testConfig } from './helpers/gateway.ts';

/** RFC 5424 §6: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG`. */
const RFC5424 = /^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) (\d+) (info|warning) - (.*)$/s;

test('a mail log line becomes one RFC 5424 message with the facility and severity in PRI', () => {
  const at = new Date('2026-12-07T10:00:00.000Z');
  const info = formatSyslog({ facility: 'mail', appName: 'breakwater' }, 'gw.test', 'Info', 'MID 1 x', at);
  assert.equal(info, `<22>1 2026-12-07T10:00:00.000Z gw.test breakwater ${process.pid} info - MID 1 x`);
  const warn = formatSyslog({ facility: 'local3', appName: 'bw' }, 'gw test\u0000', 'Warning', 'disk', at);
  const m = RFC5424.exec(warn)!;
  assert.equal(Number(m[1]), 19 * 8 + 4, 'local3.warning');
  assert.equal(m[3], 'gwtest', 'HOSTNAME is printable US-ASCII without spaces');
});

test('log.syslog is validated: transport, port range, app name', () => {
  const bad = validateConfig({
    listeners: [],
    log: { syslog: { transport: 'carrier-pigeon', port: 70000, appName: 'has space' } },
  });
  const paths = (bad.errors ?? []).map((e) => e.path);
  for (const p of ['log.syslog.transport', 'log.syslog.port', 'log.syslog.appName'])
    assert.ok(paths.includes(p), `${p} in ${JSON.stringify(paths)}`);
  const good = validateConfig({
    ...testConfig(),
    log: { syslog: { transport: 'tcp', host: 'siem.example', port: 601 } },
  });
  assert.equal(good.errors?.length ?? 0, 0, JSON.stringify(good.errors));
});

const skip = hasBinary('smtp-sink') && hasBinary('swaks') ? false : 'smtp-sink or swaks missing (run .ci/run)';

test('every mail log line of a delivered message reaches a UDP syslog server', { skip }, async () => {
  const sink = await startSmtpSink();
  const server = dgram.createSocket('udp4');
  const got: string[] = [];
  server.on('message', (m) => got.push(m.toString('utf8')));
  server.bind(0, '127.0.0.1');
  await once(server, 'listening');
  const port = server.address().port;
  const gw = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      log: { syslog: { transport: 'udp', host: '127.0.0.1', port, facility: 'mail' } },
    }),
  );
  try {
    const r = await swaks([
      '--server',
      `127.0.0.1:${gw.port('incoming')}`,
      '--to',
      'bob@dst.test',
      '--from',
      'a@src.test',
    ]);
    const mid = /queued as MID (\d+)/.exec(r.out)![1];
    await waitFor(() => got.some((l) => l.includes(`Message finished MID ${mid}`)), 10_000, 'syslog lines');
    for (const l of got) assert.match(l, RFC5424);
    const texts = got.map((l) => RFC5424.exec(l)![7]);
    assert.ok(texts.some((t) => new RegExp(`^MID ${mid} ICID \\d+ From: <a@src.test>$`).test(t)));
    assert.ok(texts.some((t) => new RegExp(`^Message done DCID \\d+ MID ${mid} to RID \\[0\\]`).test(t)));
    assert.ok(
      got.every((l) => l.startsWith('<22>') || l.startsWith('<20>')),
      'mail.info or mail.warning',
    );
    // the same lines as the mail log file
    const file = readFileSync(path.join(gw.dataDir, 'logs', 'mail.log'), 'utf8');
    assert.ok(file.includes(`Message finished MID ${mid}`));
  } finally {
    await gw.stop();
    server.close();
    await sink.stop();
  }
});

test(
  'TCP syslog: octet-counted frames; lines written while the server is down arrive after it returns',
  { skip },
  async () => {
    const port = await freePort();
    const frames: string[] = [];
    const sockets = new Set<net.Socket>();
    const listen = async (): Promise<net.Server> => {
      const srv = net.createServer((sock) => {
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
        let buf = Buffer.alloc(0);
        sock.on('data', (d) => {
          buf = Buffer.concat([buf, d]);
          // RFC 6587 §3.4.1: MSG-LEN SP SYSLOG-MSG
          for (;;) {
            const sp = buf.indexOf(0x20);
            if (sp < 0) break;
            const len = Number(buf.subarray(0, sp).toString());
            assert.ok(Number.isInteger(len) && len > 0, `frame length ${buf.subarray(0, sp).toString()}`);
            if (buf.length < sp + 1 + len) break;
            frames.push(buf.subarray(sp + 1, sp + 1 + len).toString('utf8'));
            buf = buf.subarray(sp + 1 + len);
          }
        });
      });
      srv.listen(port, '127.0.0.1');
      await once(srv, 'listening');
      return srv;
    };
    let srv = await listen();
    const sink = await startSmtpSink();
    const gw = await startTestGateway(
      testConfig({
        routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
        log: { syslog: { transport: 'tcp', host: '127.0.0.1', port, facility: 'local0' } },
      }),
    );
    try {
      const first = await swaks([
        '--server',
        `127.0.0.1:${gw.port('incoming')}`,
        '--to',
        'bob@dst.test',
        '--from',
        'a@src.test',
      ]);
      const mid1 = /queued as MID (\d+)/.exec(first.out)![1];
      await waitFor(() => frames.some((f) => f.includes(`Message finished MID ${mid1}`)), 10_000, 'first message');
      // the server goes away; mail keeps flowing and its lines wait
      const closed = new Promise<void>((r) => srv.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
      const second = await swaks([
        '--server',
        `127.0.0.1:${gw.port('incoming')}`,
        '--to',
        'bob@dst.test',
        '--from',
        'b@src.test',
      ]);
      assert.match(second.out, /250 .*queued as MID/, 'mail is accepted while syslog is down');
      const mid2 = /queued as MID (\d+)/.exec(second.out)![1];
      await waitAsync(async () => (await statusOf(gw))?.syslog?.connected === false, 10_000, 'syslog seen down');
      srv = await listen();
      await waitFor(() => frames.some((f) => f.includes(`Message finished MID ${mid2}`)), 15_000, 'queued lines');
      for (const f of frames) assert.match(f, RFC5424);
      assert.ok(
        frames.every((f) => f.startsWith('<134>') || f.startsWith('<132>')),
        'local0.info or local0.warning',
      );
      const s = (await statusOf(gw))!.syslog!;
      assert.equal(s.dropped, 0);
    } finally {
      await gw.stop();
      srv.close();
      await sink.stop();
    }
  },
);

const skipRsyslog = skip || (hasBinary('rsyslogd') ? false : 'rsyslogd missing (run .ci/run)');

test('a real rsyslogd receives the mail log over TCP and writes it to its file', { skip: skipRsyslog }, async () => {
  const dir = tempDir('bw-rsyslog-');
  const port = await freePort();
  const out = path.join(dir, 'received.log');
  const conf = path.join(dir, 'rsyslog.conf');
  writeFileSync(
    conf,
    [
      `global(workDirectory="${dir}")`,
      'module(load="imtcp")',
      `input(type="imtcp" address="127.0.0.1" port="${port}" ruleset="in")`,
      'template(name="line" type="string" string="%syslogfacility-text%.%syslogseverity-text% %hostname% %app-name% %msg%\\n")',
      `ruleset(name="in") { action(type="omfile" file="${out}" template="line") }`,
    ].join('\n'),
  );
  const rsyslog: ChildProcess = spawn(binary('rsyslogd'), ['-n', '-f', conf, '-i', path.join(dir, 'rsyslog.pid')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  rsyslog.stderr!.on('data', (d) => (err += d));
  await waitAsync(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    10_000,
    `rsyslogd listening (${err})`,
  );
  const sink = await startSmtpSink();
  const gw = await startTestGateway(
    testConfig({
      routes: { '*': [`smtp://127.0.0.1:${sink.port}`] },
      log: { syslog: { transport: 'tcp', host: '127.0.0.1', port } },
    }),
  );
  try {
    const r = await swaks([
      '--server',
      `127.0.0.1:${gw.port('incoming')}`,
      '--to',
      'bob@dst.test',
      '--from',
      'a@src.test',
    ]);
    const mid = /queued as MID (\d+)/.exec(r.out)![1];
    const text = await waitFor(
      () => {
        if (!existsSync(out)) return null;
        const t = readFileSync(out, 'utf8');
        return t.includes(`Message finished MID ${mid}`) ? t : null;
      },
      15_000,
      'rsyslogd output',
    );
    assert.match(text, new RegExp(`^mail\\.info gw\\.test breakwater MID ${mid} ICID \\d+ From: <a@src\\.test>$`, 'm'));
    assert.match(
      text,
      new RegExp(`^mail\\.info gw\\.test breakwater Message done DCID \\d+ MID ${mid} to RID \\[0\\]`, 'm'),
    );
  } finally {
    await gw.stop();
    rsyslog.kill('SIGTERM');
    await once(rsyslog, 'exit');
    await sink.stop();
  }
});

async function statusOf(gw: Awaited<ReturnType<typeof startTestGateway>>): Promise<any> {
  return gw.gateway.status();
}

async function waitAsync(fn: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
