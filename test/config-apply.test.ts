// Applying a changed configuration without ending the process (gateway/process.ts): a `breakwater start`
// child, its config changed through the admin API and applied with `breakwater config apply` and with
// SIGHUP; an invalid file is refused with nothing stopped; mail accepted before the restart is delivered
// after it, and the ports stay the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { deadPort, hasBinary, run, startSmtpSink, waitFor, type Sink } from './helpers/peers.ts';
import { spawnGateway, testConfig, writeTestConfig } from './helpers/gateway.ts';
import { sendMessage, waitForAsync } from './helpers/rawsmtp.ts';

const skip = hasBinary('smtp-sink') ? false : 'Postfix smtp-sink is not installed (run .ci/run)';

test(
  'config apply and SIGHUP restart the services on the saved file: new settings apply, the ports and accepted mail stay; an invalid file changes nothing',
  { skip, timeout: 120_000 },
  async () => {
    // downstream is down at first: a message waits in the queue across the restarts
    const down = await deadPort();
    const doc = testConfig({
      routes: { '*': [`smtp://127.0.0.1:${down.port}`] },
      delivery: { retrySchedule: ['1s'], maxQueueLifetime: '1h', connectTimeout: '1s' },
    });
    const { file, dir } = writeTestConfig(doc);
    const dataDir = path.join(dir, 'data');
    let gw: Awaited<ReturnType<typeof spawnGateway>> | null = null;
    let sink: Sink | null = null;
    let taken: Awaited<ReturnType<typeof deadPort>> | null = null;
    const cli = (...args: string[]) =>
      run(process.execPath, [path.resolve(import.meta.dirname, '../bin/breakwater.js'), ...args, '--config', file]);
    const adminCall = async (method: string, p: string, body?: unknown) => {
      const token = readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
      const r = await fetch(`http://127.0.0.1:${gw!.adminPort}/api/v1${p}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      return { status: r.status, json: (await r.json()) as any };
    };
    try {
      gw = await spawnGateway(file);
      const smtpPort = gw.ports.get('incoming')!;
      const queued = await sendMessage(smtpPort, 'a@src.test', ['bob@dst.test'], 'Subject: before\r\n\r\nbefore\r\n');
      assert.ok(queued.mid, queued.reply);
      const refused = await sendMessage(smtpPort, 'a@src.test', ['carol@new.test'], 'Subject: x\r\n\r\nx\r\n');
      assert.equal(refused.stage, 'rcpt');
      assert.match(refused.reply, /^550 5\.7\.1 /);

      // an administrator accepts a new domain through the settings API, then applies it
      const current = (await adminCall('GET', '/config')).json;
      const next = structuredClone(current.document);
      next.listeners[0].acceptDomains.push('new.test');
      const saved = await adminCall('PUT', '/config', { document: next });
      assert.equal(saved.status, 200, JSON.stringify(saved.json));
      assert.equal((await adminCall('GET', '/config')).json.restartPending, true);
      const applied = await cli('config', 'apply');
      assert.equal(applied.code, 0, applied.out);
      assert.match(applied.out, /listeners: .*new\.test/);
      assert.match(applied.out, /applied \(1 change\(s\)\)/);
      // the same ports, the new setting in force, no restart pending
      const announced = [...gw.output().matchAll(/listener incoming on port (\d+)/g)].map((m) => Number(m[1]));
      assert.deepEqual(announced, [smtpPort, smtpPort], 'started twice, on the same port');
      const after = await sendMessage(smtpPort, 'a@src.test', ['carol@new.test'], 'Subject: after\r\n\r\nafter\r\n');
      assert.ok(after.mid, `${after.stage} ${after.reply}`);
      assert.ok(after.mid! > queued.mid!, 'MIDs go on from where they were');
      const firstApply = (await adminCall('GET', '/config')).json;
      assert.equal(firstApply.restartPending, false);
      assert.equal(firstApply.lastApply.applied, true);
      assert.equal(firstApply.lastApply.why, 'admin API');

      // a valid file that cannot start (its outgoing listener wants a port another program holds): the
      // previous configuration comes back on its ports, and the file still waits to be applied
      taken = await deadPort();
      const clash = structuredClone((await adminCall('GET', '/config')).json.document);
      clash.listeners[1].port = taken.port;
      assert.equal((await adminCall('PUT', '/config', { document: clash })).status, 200);
      const clashAt = gw.output().length;
      const tried = await adminCall('POST', '/config/apply', {});
      assert.equal(tried.status, 200, JSON.stringify(tried.json));
      await waitFor(
        () => /could not start .*EADDRINUSE.*the previous one runs again/.test(gw!.output().slice(clashAt)),
        30_000,
        'the fallback',
      );
      await waitForAsync(
        async () => (await adminCall('GET', '/config').catch(() => null))?.json ?? null,
        10_000,
        'API back',
      );
      const afterClash = (await adminCall('GET', '/config')).json;
      assert.equal(afterClash.restartPending, true);
      assert.equal(afterClash.lastApply.applied, false);
      assert.match(afterClash.lastApply.message, /EADDRINUSE/);
      const served = await sendMessage(smtpPort, 'a@src.test', ['carol@new.test'], 'Subject: served\r\n\r\nx\r\n');
      assert.equal(served.stage, 'end', 'the previous configuration serves on its port');
      await taken.release();

      // an invalid file: refused with every error, and the gateway keeps running as it was
      const good = readFileSync(file, 'utf8');
      const broken = YAML.parse(good);
      broken.smtp = { dataMinRate: -1 };
      broken.delivery.retrySchedule = 'soon';
      writeFileSync(file, YAML.stringify(broken));
      const bad = await adminCall('POST', '/config/apply', {});
      assert.equal(bad.status, 400);
      assert.equal(bad.json.error.code, 'invalid_config');
      assert.match(bad.json.error.message, /smtp\.dataMinRate/);
      assert.match(bad.json.error.message, /delivery\.retrySchedule/);
      const badHup = gw.output().length;
      gw.proc.kill('SIGHUP');
      await waitFor(() => /not applied: .*2 error\(s\)/.test(gw!.output().slice(badHup)), 10_000, 'SIGHUP refused');
      const still = await sendMessage(smtpPort, 'a@src.test', ['carol@new.test'], 'Subject: still\r\n\r\nstill\r\n');
      assert.ok(still.mid, `${still.stage} ${still.reply}`);

      // SIGHUP (systemctl reload) applies a good file: the new domain goes again
      const without = YAML.parse(good);
      without.listeners[0].acceptDomains = without.listeners[0].acceptDomains.filter((d: string) => d !== 'new.test');
      writeFileSync(file, YAML.stringify(without));
      const hup = gw.output().length;
      gw.proc.kill('SIGHUP');
      await waitFor(() => gw!.output().slice(hup).includes('configuration applied'), 30_000, 'SIGHUP applied');
      const gone = await sendMessage(smtpPort, 'a@src.test', ['carol@new.test'], 'Subject: y\r\n\r\ny\r\n');
      assert.equal(gone.stage, 'rcpt', gone.reply);
      const log = readFileSync(path.join(dataDir, 'logs', 'mail.log'), 'utf8');
      assert.match(log, /configuration: applying .*breakwater\.yaml \(admin API\): restarting the services/);
      assert.match(log, /configuration not applied \(SIGHUP\): .*2 error\(s\)/);
      assert.match(log, /configuration: .*breakwater\.yaml applied \(SIGHUP\)/);

      // downstream comes up: everything accepted, before and between the restarts, is delivered once
      await down.release();
      sink = await startSmtpSink({ dump: true, port: down.port });
      await waitFor(() => sink!.messages().length >= 4, 30_000, 'four deliveries').catch(async (err: Error) => {
        throw new Error(
          `${err.message}: ${sink!.messages().length} / ${JSON.stringify((await adminCall('GET', '/queue')).json)} / ${readFileSync(path.join(dataDir, 'logs', 'mail.log'), 'utf8').slice(-2500)}`,
        );
      });
      const subjects = sink.messages().map((m) => /Subject: (\w+)/.exec(m.body)?.[1]);
      assert.deepEqual(subjects.sort(), ['after', 'before', 'served', 'still']);
      await waitForAsync(
        async () => ((await adminCall('GET', '/queue')).json.messages.length === 0 ? true : null),
        10_000,
        'an empty queue',
      );
      assert.equal(gw.proc.exitCode, null, 'still the same process');
    } finally {
      if (gw && gw.proc.exitCode === null) {
        gw.proc.kill('SIGTERM');
        await once(gw.proc, 'exit');
      }
      await sink?.stop();
      await down.release();
      await taken?.release();
    }
  },
);
