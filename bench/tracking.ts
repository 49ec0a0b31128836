// Tracking search over a million records: bulk-load realistic rows, then time every filter.
import { statSync } from 'node:fs';
import { tempDir } from '../test/helpers/peers.ts';
import path from 'node:path';
import { Store } from '../src/store/db.ts';
import { Tracker, type TrackingQuery } from '../src/tracking/tracker.ts';
import { EventBus } from '../src/tracking/bus.ts';

const WORDS =
  'invoice payment overdue meeting report quarterly update password reset account verify shipment delivery order receipt holiday party budget review contract urgent action required security alert newsletter offer discount'.split(
    ' ',
  );

/** Deterministic pseudo-random numbers, so every run loads the same data. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export interface TrackingResult {
  records: number;
  loadSeconds: number;
  dbMb: number;
  queries: Array<{ name: string; ms: number; rows: number }>;
}

export async function runTracking(records: number): Promise<TrackingResult> {
  const dir = tempDir('bw-bench-track-');
  const store = new Store(path.join(dir, 'breakwater.db'));
  const tracker = new Tracker(store, new EventBus());
  const rand = rng(42);
  const now = Date.now();
  const span = 30 * 86_400_000;
  const t0 = performance.now();
  const db = store.db;
  const insMsg = db.prepare(
    `insert into messages(mid, icid, spool_file, received_at, direction, listener, policy, sender, sender_ip, size, status, updated_at, done, subject, message_id, threat_level)
     values (?, ?, '', ?, 'incoming', 'incoming', 'default', ?, ?, ?, ?, ?, 1, ?, ?, ?)`,
  );
  const insRule = db.prepare(
    `insert or ignore into message_rules(mid, rule_id, level, category, type, description, adaptive)
     values (?, ?, ?, 'phish', 'url', 'bench rule', ?)`,
  );
  const insRcpt = db.prepare('insert into recipients(mid, rid, address, status) values (?, ?, ?, ?)');
  const insAtt = db.prepare('insert into attachments(mid, name, true_type, size, sha256) values (?, ?, ?, ?, ?)');
  const insUrl = db.prepare('insert into urls(mid, url, domain) values (?, ?, ?)');
  const insSubj = db.prepare('insert into subjects(rowid, subject) values (?, ?)');
  const statuses = ['delivered', 'delivered', 'delivered', 'delivered', 'bounced', 'deferred'];
  const probe = { sender: '', recipient: '', sha256: '', attachment: '', domain: '', messageId: '', ip: '', mid: 0 };
  const batch = 50_000;
  for (let start = 1; start <= records; start += batch) {
    db.exec('begin');
    for (let mid = start; mid < start + batch && mid <= records; mid++) {
      const sender = `user${Math.floor(rand() * 5000)}@sender${Math.floor(rand() * 500)}.test`;
      const ip = `10.${Math.floor(rand() * 8)}.${Math.floor(rand() * 16)}.${Math.floor(rand() * 16)}`;
      const at = now - span + Math.floor((mid / records) * span);
      // ~1 % of subjects carry "pallet", a handful carry "zephyrine"
      const extra = mid % 100 === 7 ? ' pallet' : mid % 200_000 === 13 ? ' zephyrine' : '';
      const subject = `${WORDS[Math.floor(rand() * WORDS.length)]} ${WORDS[Math.floor(rand() * WORDS.length)]} ${WORDS[Math.floor(rand() * WORDS.length)]} #${mid}${extra}`;
      const messageId = `<${mid}.${Math.floor(rand() * 1e9)}@sender.test>`;
      const status = statuses[Math.floor(rand() * statuses.length)];
      // Outbreak Filters: most mail scores 0; ~8 % a low level, ~4 % a threat, from 2,000 outbreak rules
      // and a few adaptive ones.
      const r = rand();
      const level = r < 0.88 ? 0 : r < 0.96 ? 1 + Math.floor(rand() * 2) : 3 + Math.floor(rand() * 3);
      insMsg.run(mid, mid, at, sender, ip, 2000 + Math.floor(rand() * 50_000), status, at, subject, messageId, level);
      if (level > 0) {
        insRule.run(mid, `OUTBREAK_${String(Math.floor(rand() * 2000)).padStart(7, '0')}`, level, 0);
        if (rand() < 0.5)
          insRule.run(mid, `ADAPTIVE_${['URL_SHORTENER', 'URGENCY', 'LINK_TEXT_MISMATCH'][mid % 3]}`, 1, 1);
      }
      insSubj.run(mid, subject);
      const nr = 1 + Math.floor(rand() * 3);
      for (let rid = 0; rid < nr; rid++) insRcpt.run(mid, rid, `rcpt${Math.floor(rand() * 50_000)}@dst.test`, status);
      if (rand() < 0.3) {
        const sha = (mid * 2654435761).toString(16).padStart(16, '0').repeat(4).slice(0, 64);
        insAtt.run(mid, `file${Math.floor(rand() * 20_000)}.pdf`, 'application/pdf', 10_000, sha);
        if (mid === Math.floor(records / 2)) {
          probe.sha256 = sha;
        }
      }
      if (rand() < 0.5) {
        const d = `site${Math.floor(rand() * 20_000)}.example`;
        insUrl.run(mid, `https://www.${d}/p/${mid}`, d);
      }
      if (mid === Math.floor(records / 3)) {
        probe.sender = sender;
        probe.ip = ip;
        probe.messageId = messageId;
        probe.mid = mid;
        probe.recipient = (
          db.prepare('select address from recipients where mid = ? limit 1').get(mid) as { address: string }
        ).address;
      }
    }
    db.exec('commit');
  }
  const att = db
    .prepare('select name, sha256 from attachments where mid >= ? limit 1')
    .get(Math.floor(records / 2)) as { name: string; sha256: string };
  probe.attachment = att.name;
  probe.sha256 ||= att.sha256;
  probe.domain = (
    db.prepare('select domain from urls where mid >= ? limit 1').get(Math.floor(records / 4)) as { domain: string }
  ).domain;
  db.exec('analyze');
  const loadSeconds = (performance.now() - t0) / 1000;
  const day = 86_400_000;
  const queries: Array<[string, TrackingQuery]> = [
    ['latest 100 (no filter)', {}],
    ['--sender', { sender: probe.sender }],
    ['--recipient', { recipient: probe.recipient }],
    ['--subject (1 % of records)', { subject: 'pallet' }],
    ['--subject (rare)', { subject: 'zephyrine' }],
    ['--message-id', { messageId: probe.messageId }],
    ['--mid', { mid: probe.mid }],
    ['--ip', { ip: probe.ip }],
    ['--sha256', { sha256: probe.sha256 }],
    ['--attachment', { attachment: probe.attachment }],
    ['--url-domain', { urlDomain: probe.domain }],
    ['--status bounced', { status: 'bounced' }],
    ['--since/--until (1 day)', { since: now - 10 * day, until: now - 9 * day }],
    ['--sender --since (25 days)', { sender: probe.sender, since: now - 25 * day }],
    ['--level 3 (4 % of records)', { level: 3 }],
    ['--level 5', { level: 5 }],
    ['--rule OUTBREAK_0000042', { rule: 'OUTBREAK_0000042' }],
    ['--rule ADAPTIVE_URGENCY (2 %)', { rule: 'ADAPTIVE_URGENCY' }],
    ['--level 3 --since/--until (1 day)', { level: 3, since: now - 10 * day, until: now - 9 * day }],
  ];
  const results: TrackingResult['queries'] = [];
  for (const [name, q] of queries) {
    const times: number[] = [];
    let rows = 0;
    tracker.search({ ...q, limit: 100 });
    for (let i = 0; i < 5; i++) {
      const s = performance.now();
      rows = tracker.search({ ...q, limit: 100 }).length;
      times.push(performance.now() - s);
    }
    times.sort((a, b) => a - b);
    results.push({ name, ms: times[2], rows });
  }
  const dbMb = statSync(path.join(dir, 'breakwater.db')).size / 1024 / 1024;
  await store.close();
  return { records, loadSeconds, dbMb, queries: results };
}
