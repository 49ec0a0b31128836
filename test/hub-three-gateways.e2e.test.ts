// One hub and three gateway processes, end to end (issue 14). Three `breakwater start` children register
// with the hub through their admin API and stream what they handle; a campaign (the same HTML invoice
// attachment, the same sender) reaches each of them over real SMTP — three different clients: our raw
// client, Python's smtplib and swaks — and a ham message goes along; every gateway delivers into a real
// Dovecot over LMTP. An analyst investigates the campaign (the API, then the Investigate page in
// Chromium: sightings on all three gateways) and keeps it as a casebook; drafts a rule on the attachment's
// SHA-256 that an operator publishes: every gateway process has it, and the hub proposes retro-remediating
// the three delivered campaign messages (never the ham). A second operator approves the proposal on the
// Response actions page: each gateway deletes its message from the mailboxes through its IMAP profile
// (Dovecot's master user), the hub records every action done, and only the ham stays in Dovecot.
// Bad input on the way: a malformed observable is refused on its own; an analyst may neither publish nor
// approve.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { RunningHub } from '../src/hub/run.ts';
import { adminJson, endProcess, testConfig, writeTestConfig } from './helpers/gateway.ts';
import { addHubUsers, hubJson, startTestHub } from './helpers/hub.ts';
import { hasDovecot, startDovecot, type TestDovecot } from './helpers/dovecot.ts';
import * as browserHelpers from './helpers/browser.ts';
import { ensureWebFresh } from './helpers/web-build.ts';
import { hasBinary, pythonSend, swaks, waitFor } from './helpers/peers.ts';
import { sendMessage, waitForAsync } from './helpers/rawsmtp.ts';

const missing = [
  !hasDovecot() && 'dovecot',
  !hasBinary('python3') && 'python3 (smtplib)',
  !hasBinary('swaks') && 'swaks',
  !browserHelpers.hasChromium() && `Chromium at ${browserHelpers.CHROMIUM}`,
].filter(Boolean);
const skip = missing.length ? `not installed: ${missing.join(', ')} (run .ci/run)` : false;

const PASSWORD = 'a long test password';
const SENDER = 'billing@northwind-invoices.test';
// the campaign's attachment: the same bytes on every gateway, so the same SHA-256
const INVOICE = Buffer.from(
  '<!doctype html>\n<html><body><h1>Northwind Traders</h1><p>Invoice 1041: 3 items, total 120.00 EUR, due in 30 days.</p></body></html>\n',
);
const HASH = createHash('sha256').update(INVOICE).digest('hex');
const CAMPAIGN_TO = ['bob@dst.test', 'carol@dst.test', 'dan@dst.test']; // one per gateway
const campaignId = (i: number) => `<invoice-104${i}.${i}@northwind-invoices.test>`;
const HAM_ID = '<minutes-tuesday@partner.test>';

interface Gw {
  name: string;
  dataDir: string;
  proc: ChildProcess;
  output: () => string;
  ports: Map<string, number>;
  adminPort: number;
  deviceId: string;
}

let hub: RunningHub;
let dovecot: TestDovecot | undefined;
let browser: Browser | undefined;
const procs: ChildProcess[] = [];
const gws: Gw[] = [];
const tokens: Record<string, string> = {};
/** per gateway: the MID of its campaign message (from the hub's summaries) */
const campaignMids: number[] = [];
let ham: { deviceId: string; mid: number };
let ruleId: string;
let proposal: any;
let analystPage: { page: Page; problems: string[] } | undefined;

const call = (who: string, method: string, route: string, body?: unknown) =>
  hubJson(hub.url, tokens[who], method, route, body);
const gwApi = (gw: Gw, method: string, route: string, body?: unknown) =>
  adminJson(`http://127.0.0.1:${gw.adminPort}/api/v1${route}`, gw.dataDir, method, body);

// a test killed half-way leaves no gateway behind
process.on('exit', () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

/**
 * `breakwater start` as a child process, like helpers/gateway.ts's spawnGateway, but known to `after`
 * from the moment it is spawned (a gateway that never finishes starting is stopped too).
 */
async function startGatewayProcess(name: string, doc: Record<string, unknown>): Promise<Omit<Gw, 'deviceId'>> {
  const { file, dir } = writeTestConfig(doc);
  const bin = path.resolve(import.meta.dirname, '../bin/breakwater.js');
  const proc = spawn(process.execPath, ['--max-semi-space-size=16', bin, 'start', '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  procs.push(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  await waitFor(() => out.includes('admin API on') || proc.exitCode !== null, 30_000, `${name} start`);
  if (proc.exitCode !== null) throw new Error(`${name} exited: ${out}`);
  const ports = new Map<string, number>();
  for (const m of out.matchAll(/listener (\S+) on port (\d+)/g)) ports.set(m[1], Number(m[2]));
  const adminPort = Number(/admin API on http:\/\/[^\s:]+:(\d+)/.exec(out)?.[1]);
  return { name, dataDir: path.join(dir, 'data'), proc, output: () => out, ports, adminPort };
}

/** A multipart message of the campaign: a short note and the invoice.html attachment. */
function campaignMessage(i: number): string {
  const b64 = INVOICE.toString('base64').replace(/.{1,76}/g, '$&\r\n');
  return [
    `From: "Northwind Billing" <${SENDER}>`,
    `To: <${CAMPAIGN_TO[i]}>`,
    `Subject: Invoice 104${i} for November`,
    `Message-ID: ${campaignId(i)}`,
    `Date: ${new Date().toUTCString()}`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="nw-boundary"',
    '',
    '--nw-boundary',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Hello, your invoice for November is attached. Kind regards, Northwind billing team',
    '--nw-boundary',
    'Content-Type: text/html; name="invoice.html"',
    'Content-Disposition: attachment; filename="invoice.html"',
    'Content-Transfer-Encoding: base64',
    '',
    b64 + '--nw-boundary--',
    '',
  ].join('\r\n');
}

before(async () => {
  if (skip) return;
  ensureWebFresh();
  dovecot = await startDovecot(CAMPAIGN_TO);
  hub = await startTestHub({ retroRemediation: { window: '24h', action: 'delete' } });
  Object.assign(
    tokens,
    await addHubUsers(hub, [
      ['analyst', 'analyst'],
      ['operator', 'operator'],
      ['operator2', 'operator'],
    ]),
  );
  const cloud = { enabled: true, region: 'eu', regions: { eu: hub.url }, stream: { interval: '100ms' } };
  const started = await Promise.all(
    [1, 2, 3].map((n) =>
      startGatewayProcess(
        `gw${n}`,
        testConfig({
          hostname: `gw${n}.test`,
          routes: { '*': [`lmtp://127.0.0.1:${dovecot!.lmtpPort}`] },
          outbreakFilters: { adaptiveRules: false },
          remediation: {
            profiles: [
              {
                name: 'dovecot',
                type: 'imap',
                host: '127.0.0.1',
                port: dovecot!.imapPort,
                tls: 'none',
                masterUser: dovecot!.masterUser,
                masterPassword: dovecot!.masterPassword,
              },
            ],
            mappings: [{ domain: 'dst.test', profile: 'dovecot' }],
          },
          cloud,
        }),
      ),
    ),
  );
  // each registers through its own admin API, with a one-time token from the hub
  for (const g of started) {
    const t = await hubJson(hub.url, hub.token, 'POST', '/api/v1/tokens', { region: 'eu' });
    assert.equal(t.status, 200, JSON.stringify(t.json));
    const reg = await gwApi({ ...g, deviceId: '' }, 'POST', '/cloud/register', { token: t.json.token });
    assert.equal(reg.status, 'registered', JSON.stringify(reg));
    gws.push({ ...g, deviceId: reg.deviceId });
  }
  browser = await browserHelpers.launchChromium();
});

after(async () => {
  const steps: Array<() => Promise<unknown>> = [
    async () => browser?.close(),
    // SIGTERM (a graceful stop), SIGKILL when that takes too long
    async () =>
      Promise.all(
        procs.map(async (p) => {
          const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
          await endProcess(p, 'SIGTERM');
          clearTimeout(t);
        }),
      ),
    async () => hub?.stop(),
    async () => dovecot?.stop(),
  ];
  for (const step of steps) await step().catch((err) => console.error('cleanup:', err));
});

test(
  'a campaign through three gateway processes over SMTP is delivered into Dovecot and streamed to the hub',
  { skip, timeout: 60_000 },
  async () => {
    const [g1, g2, g3] = gws;
    // our raw SMTP client to gw1 (the campaign, then the ham), Python's smtplib to gw2, swaks to gw3
    const s1 = await sendMessage(g1.ports.get('incoming')!, SENDER, [CAMPAIGN_TO[0]], campaignMessage(0));
    assert.match(s1.reply, /^250 /, s1.reply);
    const hamSent = await sendMessage(
      g1.ports.get('incoming')!,
      'carol.smith@partner.test',
      ['bob@dst.test'],
      `From: Carol Smith <carol.smith@partner.test>\r\nTo: <bob@dst.test>\r\nSubject: Minutes of Tuesday's meeting\r\nMessage-ID: ${HAM_ID}\r\n\r\nHi Bob, the minutes are below. Next meeting on Friday at 10.\r\n`,
    );
    assert.match(hamSent.reply, /^250 /, hamSent.reply);
    const s2 = await pythonSend(g2.ports.get('incoming')!, SENDER, [CAMPAIGN_TO[1]], campaignMessage(1));
    assert.match(s2.out, /"ok": true/, s2.out);
    const s3 = await swaks([
      '--server',
      `127.0.0.1:${g3.ports.get('incoming')!}`,
      '--helo',
      'swaks.test',
      '--from',
      SENDER,
      '--to',
      CAMPAIGN_TO[2],
      '--data',
      campaignMessage(2),
    ]);
    assert.equal(s3.code, 0, s3.out);

    // delivered into the mailboxes over LMTP
    await waitForAsync(
      async () => {
        const boxes = await Promise.all(CAMPAIGN_TO.map((u) => dovecot!.messageIds(u)));
        return (
          JSON.stringify(boxes.map((b) => b.INBOX)) ===
          JSON.stringify([[campaignId(0), HAM_ID].sort(), [campaignId(1)], [campaignId(2)]])
        );
      },
      20_000,
      'every message in its Dovecot mailbox',
    );
    // and the hub has every summary, delivered, from the gateway that handled it
    const found = await waitForAsync(
      async () => {
        const r = await call('analyst', 'GET', `/api/v1/messages?type=sha256&value=${HASH}`);
        const delivered = r.json.messages?.filter((m: any) => m.summary.status === 'delivered') ?? [];
        return delivered.length === 3 ? delivered : null;
      },
      20_000,
      'three delivered campaign summaries at the hub',
    );
    for (const [i, gw] of gws.entries()) {
      const m = found.find((x: any) => x.deviceId === gw.deviceId);
      assert.ok(m, `${gw.name}'s campaign message at the hub`);
      assert.equal(m.summary.messageId, campaignId(i));
      assert.deepEqual(
        m.summary.recipients.map((r: any) => [r.address, r.status]),
        [[CAMPAIGN_TO[i], 'delivered']],
      );
      assert.deepEqual(
        m.summary.attachments.map((a: any) => [a.name, a.sha256]),
        [['invoice.html', HASH]],
      );
      campaignMids[i] = m.summary.mid;
    }
    assert.equal(campaignMids[0], s1.mid);
    const hamAtHub = await waitForAsync(
      async () => {
        const r = await call(
          'analyst',
          'GET',
          `/api/v1/messages?type=email_messageid&value=${encodeURIComponent(HAM_ID)}`,
        );
        const m = r.json.messages?.[0];
        return m?.summary.status === 'delivered' ? m : null;
      },
      20_000,
      'the ham summary at the hub',
    );
    ham = { deviceId: hamAtHub.deviceId, mid: hamAtHub.summary.mid };
    assert.deepEqual(ham, { deviceId: g1.deviceId, mid: hamSent.mid });
  },
);

test(
  'investigated through the API and in Chromium: sightings on all three gateways, kept as a casebook',
  { skip, timeout: 60_000 },
  async () => {
    // the API: a malformed item is refused on its own, the others are investigated
    const inv = await call('analyst', 'POST', '/api/v1/investigate', {
      text: `campaign from ${SENDER}\nmd5: d41d8cd98f00b204e9800998ecf8427e`,
      observables: [
        { type: 'sha256', value: HASH },
        { type: 'ip', value: '999.1.1.1' },
      ],
    });
    assert.equal(inv.status, 200, JSON.stringify(inv.json));
    assert.deepEqual(
      inv.json.errors.map((e: any) => e.input),
      ['md5: d41d8cd98f00b204e9800998ecf8427e', 'ip: 999.1.1.1'],
    );
    const byType = new Map(inv.json.observables.map((o: any) => [o.type, o]));
    for (const type of ['sha256', 'email']) {
      const o: any = byType.get(type);
      assert.ok(o, `${type} investigated`);
      assert.equal(o.sightings.count, 3, `${type}: 3 messages`);
      assert.deepEqual(
        o.sightings.gateways.map((g: any) => [g.name, g.deviceId, g.count]).sort(),
        gws.map((g) => [`${g.name}.test`, g.deviceId, 1]),
      );
      assert.equal(o.judgement, 'no threat found');
    }
    assert.equal((byType.get('email') as any).roles.sender, 3);
    assert.deepEqual(
      inv.json.messages.map((m: any) => `${m.gateway}:${m.summary.mid}`).sort(),
      gws.map((g, i) => `${g.name}.test:${campaignMids[i]}`),
    );
    assert.ok(
      inv.json.graph.edges.some((e: any) => e.kind === 'attached' && e.target === `sha256:${HASH}` && e.messages === 3),
      'the graph links the sender to the attachment',
    );

    // the Investigate page: the analyst pastes the observables
    analystPage = await browserHelpers.openPage(browser!);
    const { page } = analystPage;
    await browserHelpers.signIn(page, hub.url, 'analyst', PASSWORD);
    await page.getByRole('heading', { level: 1, name: 'Investigate' }).waitFor();
    await page.getByLabel(/Observables, or any text/).fill(`sha256: ${HASH}\nFrom: ${SENDER}`);
    await page.getByRole('button', { name: 'Investigate' }).click();
    const table = page.getByRole('table', { name: 'observables' });
    await table.getByText(HASH).waitFor();
    for (const value of [HASH, SENDER]) {
      const row = await table.locator('tr', { hasText: value }).innerText();
      assert.match(row, /no threat found\s+3\s+/, row);
      for (const gw of gws) assert.ok(row.includes(`${gw.name}.test (1)`), `${gw.name} in: ${row}`);
    }
    assert.equal(await page.getByRole('table', { name: 'investigated messages' }).locator('tbody tr').count(), 3);
    // saved as a casebook, listed on the Casebooks page with its observables
    await page.getByLabel('Casebook title').fill('Northwind invoice wave');
    await page.getByLabel('Notes').fill('HTML invoice on three gateways');
    await page.getByRole('button', { name: 'Save as casebook' }).click();
    // the page opens the saved casebook (investigated again), or says why it cannot
    const opened = page.getByRole('heading', { level: 2, name: 'Northwind invoice wave' });
    const failed = page.locator('p.error');
    await opened.or(failed).first().waitFor();
    assert.equal(
      await failed.count(),
      0,
      `the saved casebook opens: ${await failed.allInnerTexts()} ${analystPage.problems.join('; ')}`,
    );
    const nav = page.getByRole('navigation', { name: 'Pages' });
    await nav.getByRole('link', { name: 'Casebooks' }).click();
    const listed = page.getByRole('table', { name: 'casebooks' }).locator('tr', { hasText: 'Northwind invoice wave' });
    await listed.waitFor();
    assert.match(await listed.innerText(), /Northwind invoice wave\s+2\s+.*analyst/);
    await listed.getByRole('link', { name: 'Northwind invoice wave' }).click();
    const kept = page.getByRole('table', { name: 'observables' });
    await kept.getByText(HASH).waitFor();
    assert.match(await kept.locator('tr', { hasText: SENDER }).innerText(), /\s3\s/);
    const books = (await call('analyst', 'GET', '/api/v1/casebooks')).json.casebooks;
    assert.equal(books.length, 1);
    assert.deepEqual(books[0].observables.map((o: any) => `${o.type}:${o.value}`).sort(), [
      `email:${SENDER}`,
      `sha256:${HASH}`,
    ]);
    assert.equal(books[0].createdBy, 'analyst');
    assert.deepEqual(analystPage.problems, []);
  },
);

test(
  'a rule on the attachment, drafted by the analyst and published by an operator, reaches every gateway process and proposes retro-remediation',
  { skip, timeout: 60_000 },
  async () => {
    const draft = await call('analyst', 'POST', '/api/v1/rules', {
      level: 4,
      category: 'phish',
      description: 'Northwind invoice.html wave',
      condition: { attachment: { sha256: [HASH] } },
    });
    assert.equal(draft.status, 200, JSON.stringify(draft.json));
    ruleId = draft.json.id;
    // an analyst drafts, never publishes
    const refused = await call('analyst', 'POST', '/api/v1/rules/publish', { ids: [ruleId] });
    assert.equal(refused.status, 403);
    assert.equal(refused.json.error.code, 'forbidden');
    const pub = await call('operator', 'POST', '/api/v1/rules/publish', { ids: [ruleId] });
    assert.equal(pub.status, 200, JSON.stringify(pub.json));
    const version = pub.json.bundle.version as number;

    // every gateway process has it (its own admin API)
    await waitForAsync(
      async () => {
        const all = await Promise.all(gws.map((g) => gwApi(g, 'GET', '/outbreak/rules')));
        return all.every((r) => r.version >= version && r.rules.some((x: any) => x.id === ruleId && x.level === 4));
      },
      15_000,
      `bundle version ${version} on every gateway`,
    );

    // the hub proposes remediating the three delivered campaign messages, and not the ham
    proposal = await waitForAsync(
      async () =>
        (await call('analyst', 'GET', '/api/v1/retro')).json.proposals.find((p: any) => p.ruleId === ruleId) ?? null,
      10_000,
      'a retro-remediation proposal',
    );
    assert.equal(proposal.status, 'proposed', JSON.stringify(proposal));
    assert.equal(proposal.action, 'delete');
    assert.equal(proposal.ruleLevel, 4);
    assert.deepEqual(
      proposal.messages.map((m: any) => [m.deviceId, m.mid, m.recipients, m.sender]).sort(),
      gws.map((g, i) => [g.deviceId, campaignMids[i], [CAMPAIGN_TO[i]], SENDER]).sort(),
    );
    assert.ok(
      !proposal.messages.some((m: any) => m.deviceId === ham.deviceId && m.mid === ham.mid),
      'the ham message is not proposed',
    );
    // nothing reaches a gateway before approval
    const waiting = (await call('analyst', 'GET', '/api/v1/actions?status=awaiting_approval')).json.actions;
    for (const m of proposal.messages) {
      const a = waiting.find((x: any) => x.id === m.actionId);
      assert.ok(a, `action ${m.actionId} awaits approval`);
      assert.equal(a.deviceId, m.deviceId);
      assert.deepEqual(a.observable, { type: 'cisco_mid', value: String(m.mid) });
    }
    assert.equal((await dovecot!.messageIds('dan@dst.test')).INBOX.length, 1, 'still in the mailbox');
  },
);

test(
  'the analyst may look at the proposal but not approve it; a second operator approves it in Chromium and each gateway deletes its message from Dovecot',
  { skip, timeout: 60_000 },
  async () => {
    // the analyst: the proposal on the Response actions page, without the buttons; the API says 403
    const { page: ap, problems: aProblems } = analystPage!;
    await ap.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Response actions' }).click();
    const aRow = ap.getByRole('region', { name: 'retro-remediation proposals' }).locator(`tr[data-rule="${ruleId}"]`);
    await aRow.waitFor();
    assert.match(await aRow.innerText(), /3 on 3 gateway\(s\)/);
    assert.equal(await aRow.getByRole('button').count(), 0, 'no Approve / Dismiss for an analyst');
    const denied = await call('analyst', 'POST', `/api/v1/retro/${proposal.id}/approve`);
    assert.equal(denied.status, 403);
    assert.equal(denied.json.error.code, 'forbidden');
    assert.deepEqual(aProblems, []);

    // the second operator approves it on the page
    const { page, problems } = await browserHelpers.openPage(browser!);
    await browserHelpers.signIn(page, hub.url, 'operator2', PASSWORD);
    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Response actions' }).click();
    const section = page.getByRole('region', { name: 'retro-remediation proposals' });
    await section.getByRole('heading', { name: 'Retro-remediation' }).waitFor();
    const row = section.locator(`tr[data-rule="${ruleId}"]`);
    assert.match(await row.innerText(), new RegExp(`${ruleId} \\(level 4\\)\\s+delete\\s+3 on 3 gateway\\(s\\)`));
    await row.getByText('3 on 3 gateway(s)').click(); // open the list of messages
    for (const to of CAMPAIGN_TO) await row.getByText(new RegExp(`${SENDER} → ${to}`)).waitFor();
    await row.getByRole('button', { name: 'Approve' }).click();
    await page.getByRole('status').getByText(`retro-remediation for ${ruleId}: approved (3 messages)`).waitFor();

    // every action ends done, on the gateway that delivered its message
    const ids = proposal.messages.map((m: any) => m.actionId);
    const done = await waitForAsync(
      async () => {
        const all = (await call('operator2', 'GET', '/api/v1/actions')).json.actions;
        const mine = all.filter((a: any) => ids.includes(a.id));
        return mine.length === 3 && mine.every((a: any) => ['done', 'failed', 'expired'].includes(a.status))
          ? mine
          : null;
      },
      30_000,
      'the three actions finished',
    );
    assert.deepEqual(
      done.map((a: any) => [a.deviceId, a.status, a.action]).sort(),
      gws.map((g) => [g.deviceId, 'done', 'delete']).sort(),
      JSON.stringify(done),
    );
    const decided = (await call('operator', 'GET', `/api/v1/retro/${proposal.id}`)).json;
    assert.equal(decided.status, 'approved');
    assert.equal(decided.decidedBy, 'operator2');

    // the campaign is gone from every mailbox; the ham stays
    assert.deepEqual((await dovecot!.messageIds('bob@dst.test')).INBOX, [HAM_ID]);
    assert.deepEqual((await dovecot!.messageIds('carol@dst.test')).INBOX, []);
    assert.deepEqual((await dovecot!.messageIds('dan@dst.test')).INBOX, []);
    // each gateway tracked its attempt, on behalf of the hub's proposal
    for (const [i, gw] of gws.entries()) {
      const rec = await gwApi(gw, 'GET', `/tracking/messages/${campaignMids[i]}`);
      const attempts = rec.events.filter((e: any) => e.type === 'remediation.attempt');
      assert.deepEqual(
        attempts.map((e: any) => [e.action, e.recipient, e.profile, e.result, e.by]),
        [['delete', CAMPAIGN_TO[i], 'dovecot', 'done', `hub:retro:${ruleId}`]],
        `${gw.name}: ${JSON.stringify(attempts)}`,
      );
    }

    // the page shows them done
    await page.reload();
    const actions = page.getByRole('table', { name: 'response actions' });
    await actions.locator('tr[data-status="done"]').nth(2).waitFor();
    assert.match(await section.locator(`tr[data-rule="${ruleId}"]`).innerText(), /approved by operator2/);
    assert.equal(await section.locator(`tr[data-rule="${ruleId}"]`).getByRole('button').count(), 0);
    assert.deepEqual(problems, []);
    // every gateway process is still running
    for (const gw of gws) assert.equal(gw.proc.exitCode, null, `${gw.name} running: ${gw.output().slice(-2000)}`);
  },
);
