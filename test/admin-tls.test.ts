// HTTPS on the admin port (admin.tls): the self-signed certificate of dataDir/tls, a Secure session
// cookie, plain HTTP refused, and the CLI pinning the gateway's certificate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Agent, fetch } from 'undici';
import { startTestGateway, testConfig } from './helpers/gateway.ts';
import { validateConfig } from '../src/config/load.ts';

test('admin.tls: HTTPS only, Secure cookie, and the CLI pins the certificate', async () => {
  const gw = await startTestGateway(testConfig({ admin: { host: '127.0.0.1', port: 0, tls: { enabled: true } } }));
  try {
    assert.equal(gw.adminScheme, 'https');
    const pem = readFileSync(path.join(gw.dataDir, 'tls', 'self-signed.crt'), 'utf8');
    const agent = new Agent({ connect: { ca: pem, servername: 'gw.test', checkServerIdentity: () => undefined } });
    const base = `https://127.0.0.1:${gw.adminPort}`;
    const health = await fetch(`${base}/health`, { dispatcher: agent });
    assert.equal(health.status, 200);
    // not trusted without the certificate: nothing is sent to an impostor
    await assert.rejects(fetch(`${base}/health`));
    // plain HTTP gets no answer from an HTTPS port
    await assert.rejects(fetch(`http://127.0.0.1:${gw.adminPort}/health`));
    await gw.gateway.users.add('tls-user', 'analyst', 'a long password');
    const login = await fetch(`${base}/api/v1/session`, {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'tls-user', password: 'a long password' }),
    });
    assert.equal(login.status, 200);
    assert.match(login.headers.get('set-cookie') ?? '', /; Secure/);
    // the CLI, as `breakwater start` leaves the address for it
    writeFileSync(path.join(gw.dataDir, 'admin.addr'), `https://127.0.0.1:${gw.adminPort}\n`);
    const bin = path.resolve(import.meta.dirname, '../bin/breakwater.js');
    const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [
        bin,
        'users',
        'list',
        '--json',
        '--config',
        path.join(gw.dir, 'breakwater.yaml'),
      ]);
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
    assert.equal(out.code, 0, out.stderr);
    assert.ok(JSON.parse(out.stdout).some((u: any) => u.name === 'tls-user'));
  } finally {
    await gw.stop();
  }
});

test('admin.tls: a certificate without its key is a config error with its path', () => {
  const v = validateConfig({
    listeners: (testConfig() as any).listeners,
    admin: { tls: { enabled: true, cert: '/etc/ssl/cert.pem' } },
  });
  assert.ok(
    v.errors.some((e) => e.path === 'admin.tls.key' && /go together/.test(e.message)),
    JSON.stringify(v.errors),
  );
});
