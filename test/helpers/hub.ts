// `breakwater hub start` as a child process, for tests and benchmarks.
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { loadHubConfig } from '../../src/hub/config.ts';
import { runHub, type RunningHub } from '../../src/hub/run.ts';
import { tempDir } from './peers.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { readAdminToken } from '../../src/api/token.ts';
import { HUB_AUDIENCE, signDeviceToken } from '../../src/xdr/device-jwt.ts';
import type { MessageSummary } from '../../src/xdr/summary.ts';

// every answer of a hub started here is checked against its documented schema (as gateways' are)
process.env.BREAKWATER_API_CHECK_RESPONSES ??= '1';

/** `breakwater hub start` as a child process; its URL and admin token. */
export async function spawnHub(
  file: string,
  /** more options for node (e.g. `--import` of a module that injects a fault) */
  nodeArgs: string[] = [],
): Promise<{ proc: ChildProcess; url: string; token: string; output: () => string }> {
  const bin = path.resolve(import.meta.dirname, '../../bin/breakwater.js');
  const proc = spawn(process.execPath, [...nodeArgs, bin, 'hub', 'start', '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const deadline = Date.now() + 15_000;
  while (!/hub on (http:\S+)/.test(out)) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`hub did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = /hub on (http:\S+)/.exec(out)![1];
  return { proc, url, token: readAdminToken(path.join(path.dirname(file), 'data'))!, output: () => out };
}

/** Registers devices with a hub through its API (a token each); their ids and secrets. */
export async function registerTestDevices(
  hubUrl: string,
  adminToken: string,
  names: string[],
): Promise<Array<{ id: string; secret: string }>> {
  const out: Array<{ id: string; secret: string }> = [];
  for (const name of names) {
    const t = (await (
      await fetch(`${hubUrl}/api/v1/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ region: 'eu' }),
      })
    ).json()) as { token: string };
    const reg = (await (
      await fetch(`${hubUrl}/api/v1/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          token: t.token,
          region: 'eu',
          identity: { uuid: `uuid-${name}`, hostname: `${name}.test`, name },
        }),
      })
    ).json()) as { deviceId: string; secret: string };
    out.push({ id: reg.deviceId, secret: reg.secret });
  }
  return out;
}

/** Posts summaries as a registered device would (its device JWT). */
export async function sendSummaries(
  hubUrl: string,
  device: { id: string; secret: string },
  batchId: string,
  summaries: MessageSummary[],
): Promise<void> {
  const jwt = await signDeviceToken(device.id, device.secret, HUB_AUDIENCE);
  const r = await fetch(`${hubUrl}/api/v1/device/batches`, {
    method: 'POST',
    headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
    body: JSON.stringify({ batchId, summaries }),
  });
  if (!r.ok) throw new Error(`batch refused: ${r.status} ${await r.text()}`);
}

/** A message summary as a gateway streams it, with these fields changed. */
export function testSummary(mid: number, o: Partial<MessageSummary> = {}): MessageSummary {
  return {
    mid,
    icid: mid,
    parentMid: null,
    receivedAt: new Date().toISOString(),
    direction: 'incoming',
    listener: 'incoming',
    policy: 'default',
    sender: 'someone@sender.test',
    recipients: [{ address: 'bob@dst.test', status: 'delivered', lastReply: '250 ok' }],
    headerFrom: null,
    subject: 'hello',
    messageId: `<m${mid}@sender.test>`,
    senderIp: '192.0.2.1',
    rdns: null,
    helo: null,
    size: 2000,
    attachments: [],
    urls: [],
    status: 'delivered',
    verdict: 'deliver',
    threatLevel: 0,
    rules: [],
    version: 1,
    ...o,
  };
}

/** A hub in this process on a free port with a fresh data directory; `doc` adds to its config. */
export async function startTestHub(doc: Record<string, unknown> = {}): Promise<RunningHub> {
  const dir = tempDir('bw-hub-');
  const file = path.join(dir, 'hub.yaml');
  writeFileSync(file, YAML.stringify({ dataDir: './data', listen: { host: '127.0.0.1', port: 0 }, ...doc }));
  return runHub(loadHubConfig(file));
}

/** Users of a hub with these roles, and a personal API token of each (name → token). */
export async function addHubUsers(hub: RunningHub, users: Array<[string, string]>): Promise<Record<string, string>> {
  const tokens: Record<string, string> = {};
  for (const [name, role] of users) {
    await hub.users.add(name, role, 'a long test password');
    tokens[name] = hub.users.createToken(name, 'test', null).token;
  }
  return tokens;
}

/** A JSON call to a hub with a bearer token: status, headers and the parsed body (errors included). */
export async function hubJson(
  hubUrl: string,
  token: string,
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; headers: Headers; json: any }> {
  const r = await fetch(hubUrl + route, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, headers: r.headers, json: await r.json() };
}
