// Mailbox remediation at scale against a real Dovecot (started here: test/helpers/dovecot.ts): 2,000
// messages (400 with BENCH_QUICK=1) are delivered through the gateway into 10 mailboxes over LMTP; the
// gateway then deletes the first half through RemediationService.run (tracking lookups, one IMAP session
// per mailbox through the master user, every folder searched, Message-IDs verified, one event per
// message), and, as the reference in the same run, plain imapflow deletes the second half the same way
// without the gateway (one master-user session per mailbox, OR-ed SEARCH HEADER Message-ID per folder,
// UID EXPUNGE).
//   ./node_modules/.bin/node bench/remediation.ts       (also part of `npm run bench`: BENCH_ONLY=remediation)
import { ImapFlow } from 'imapflow';
import { startTestGateway, testConfig } from '../test/helpers/gateway.ts';
import { startDovecot, hasDovecot } from '../test/helpers/dovecot.ts';
import { waitFor } from '../test/helpers/peers.ts';
import { sendMessage } from '../test/helpers/rawsmtp.ts';

export interface RemediationBenchResult {
  messages: number;
  mailboxes: number;
  gatewaySeconds: number;
  gatewayPerSec: number;
  referenceSeconds: number;
  referencePerSec: number;
  failed: number;
}

export { hasDovecot };

export async function runRemediationBench(quick: boolean): Promise<RemediationBenchResult> {
  const perSet = quick ? 200 : 1000;
  const users = Array.from({ length: 10 }, (_, i) => `user${i}@dst.test`);
  const dovecot = await startDovecot(users);
  const gw = await startTestGateway(
    testConfig({
      routes: { '*': [`lmtp://127.0.0.1:${dovecot.lmtpPort}`] },
      remediation: {
        profiles: [
          {
            name: 'dovecot',
            type: 'imap',
            host: '127.0.0.1',
            port: dovecot.imapPort,
            tls: 'none',
            masterUser: dovecot.masterUser,
            masterPassword: dovecot.masterPassword,
          },
        ],
        mappings: [{ domain: 'dst.test', profile: 'dovecot' }],
      },
    }),
  );
  try {
    const body = 'x'.repeat(1000);
    const sets: Array<Array<{ mid: number; id: string; user: string }>> = [[], []];
    let next = 0;
    const total = perSet * 2;
    const sender = async (): Promise<void> => {
      for (let i = next++; i < total; i = next++) {
        const set = i % 2;
        const user = users[Math.floor(i / 2) % users.length];
        const id = `bench-${i}@evil.test`;
        const { mid, reply } = await sendMessage(
          gw.port('outgoing'),
          'mallory@evil.test',
          [user],
          `From: <mallory@evil.test>\r\nTo: <${user}>\r\nSubject: bench ${i}\r\nMessage-ID: <${id}>\r\n\r\n${body}\r\n`,
        );
        if (!mid) throw new Error(reply);
        sets[set].push({ mid, id, user });
      }
    };
    await Promise.all(Array.from({ length: 8 }, sender));
    const all = [...sets[0], ...sets[1]];
    await waitFor(
      () => all.every((m) => gw.gateway.tracker.show(m.mid)?.status === 'delivered'),
      300_000,
      'every bench message delivered',
    );

    const t0 = performance.now();
    const r = await gw.gateway.remediation.run({ action: 'delete', mids: sets[0].map((m) => m.mid), by: 'bench' });
    const gatewaySeconds = (performance.now() - t0) / 1000;

    const t1 = performance.now();
    const byUser = new Map<string, string[]>();
    for (const m of sets[1]) byUser.set(m.user, [...(byUser.get(m.user) ?? []), m.id]);
    let removed = 0;
    const queue = [...byUser.entries()];
    // the same concurrency as the gateway: 4 mailboxes at once
    const worker = async (): Promise<void> => {
      for (let e = queue.shift(); e; e = queue.shift()) {
        const [user, ids] = e;
        const c = new ImapFlow({
          host: '127.0.0.1',
          port: dovecot.imapPort,
          secure: false,
          doSTARTTLS: false,
          auth: { user: `${user}*${dovecot.masterUser}`, pass: dovecot.masterPassword },
          logger: false,
        });
        await c.connect();
        for (const box of await c.list()) {
          const lock = await c.getMailboxLock(box.path);
          try {
            for (let i = 0; i < ids.length; i += 50) {
              const chunk = ids.slice(i, i + 50);
              const uids =
                (await c.search(
                  chunk.length === 1
                    ? { header: { 'message-id': chunk[0] } }
                    : { or: chunk.map((id) => ({ header: { 'message-id': id } })) },
                  { uid: true },
                )) || [];
              if (uids.length) {
                await c.messageDelete(uids, { uid: true });
                removed += uids.length;
              }
            }
          } finally {
            lock.release();
          }
        }
        await c.logout();
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    const referenceSeconds = (performance.now() - t1) / 1000;
    if (removed !== perSet) throw new Error(`reference removed ${removed} of ${perSet}`);
    return {
      messages: perSet,
      mailboxes: users.length,
      gatewaySeconds,
      gatewayPerSec: perSet / gatewaySeconds,
      referenceSeconds,
      referencePerSec: perSet / referenceSeconds,
      failed: r.failed,
    };
  } finally {
    await gw.stop();
    await dovecot.stop();
  }
}

export function printRemediationBench(r: RemediationBenchResult): void {
  console.log(
    `Remediation (delete) of ${r.messages} delivered messages in ${r.mailboxes} Dovecot mailboxes, IMAP master user, 4 mailboxes at once`,
  );
  console.log('| | seconds | messages/s |');
  console.log('|---|---|---|');
  console.log(
    `| gateway: RemediationService.run (tracking, events, every folder) | ${r.gatewaySeconds.toFixed(2)} | ${r.gatewayPerSec.toFixed(0)} |`,
  );
  console.log(
    `| reference: plain imapflow, same searches and expunges | ${r.referenceSeconds.toFixed(2)} | ${r.referencePerSec.toFixed(0)} |`,
  );
  if (r.failed) console.log(`(${r.failed} failed)`);
  console.log('');
}

if (import.meta.main) {
  if (!hasDovecot()) {
    console.log('remediation: skipped (dovecot not installed; see .ci/run)');
  } else printRemediationBench(await runRemediationBench(process.env.BENCH_QUICK === '1'));
  process.exit(0);
}
