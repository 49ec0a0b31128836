// Tracking search over a million records: bulk-load realistic rows into a gateway's data directory, start
// the gateway on it, then time every filter three ways in the same run: through the admin API the web UI
// calls (GET /api/v1/tracking/messages), tracker.search alone (the gateway's own tracker, no HTTP), and a
// hand-written SQL query answering the same question on a separate read-only connection to the same file.
import { statSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import YAML from 'yaml';
import { tempDir } from '../test/helpers/peers.ts';
import { testConfig } from '../test/helpers/gateway.ts';
import { validateConfig, type LoadedConfig } from '../src/config/load.ts';
import { runGateway } from '../src/gateway/run.ts';
import { Store } from '../src/store/db.ts';
import type { TrackingQuery } from '../src/tracking/tracker.ts';

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

/** The records every search asks for (the API's default). */
const LIMIT = 100;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

export interface TrackingTiming {
  p50: number;
  p99: number;
}

export interface TrackingResult {
  records: number;
  loadSeconds: number;
  /** runGateway on the loaded data directory */
  gatewayStartSeconds: number;
  dbMb: number;
  /** timed runs per query and way (after one warm-up each) */
  runs: number;
  limit: number;
  /** the whole bench process: loader, gateway (in process) and the reference connection */
  peakRssMb: number;
  queries: Array<{
    name: string;
    /** GET /api/v1/tracking/messages with the admin token, JSON read to the end */
    api: TrackingTiming;
    /** the gateway's tracker.search */
    search: TrackingTiming;
    /** the hand-written SQL, read-only connection of its own */
    rawSql: TrackingTiming;
    sql: string;
    rows: number;
    apiRows: number;
    rawRows: number;
    /** the three answered the same MIDs (last run) */
    sameMids: boolean;
  }>;
}

export async function runTracking(records: number, runs = 60): Promise<TrackingResult> {
  const dir = tempDir('bw-bench-track-');
  const dataDir = path.join(dir, 'data');
  const dbFile = path.join(dataDir, 'breakwater.db');
  const store = new Store(dbFile);
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
  await store.close();
  const dbMb = statSync(dbFile).size / 1024 / 1024;

  // The gateway on that data directory, as `breakwater start` runs it. The test helpers turn on the check
  // of every API answer against its schema (a test-only cost); production answers are not checked.
  const checkBefore = process.env.BREAKWATER_API_CHECK_RESPONSES;
  process.env.BREAKWATER_API_CHECK_RESPONSES = '0';
  const g0 = performance.now();
  const v = validateConfig(YAML.parse(YAML.stringify({ dataDir: './data', ...testConfig() })));
  if (!v.config) throw new Error(JSON.stringify(v.errors));
  const loaded: LoadedConfig = { config: v.config, file: path.join(dir, 'breakwater.yaml'), dataDir };
  const gw = await runGateway(loaded);
  const gatewayStartSeconds = (performance.now() - g0) / 1000;
  if (checkBefore === undefined) delete process.env.BREAKWATER_API_CHECK_RESPONSES;
  else process.env.BREAKWATER_API_CHECK_RESPONSES = checkBefore;
  const base = `${gw.adminScheme}://127.0.0.1:${gw.adminPort}/api/v1/tracking/messages`;
  const auth = { authorization: `Bearer ${gw.token}` };
  // The reference: a connection of its own, read-only, with the store's cache settings.
  const ref = new DatabaseSync(dbFile, { readOnly: true });
  ref.exec('pragma temp_store = memory; pragma cache_size = -16384;');

  const day = 86_400_000;
  const newest = `order by m.received_at desc limit ${LIMIT}`;
  const queries: Array<{ name: string; q: TrackingQuery; sql: string; args: SQLInputValue[] }> = [
    { name: 'latest 100 (no filter)', q: {}, sql: `select m.mid from messages m ${newest}`, args: [] },
    {
      name: '--sender',
      q: { sender: probe.sender },
      sql: `select m.mid from messages m where m.sender = ? ${newest}`,
      args: [probe.sender],
    },
    {
      name: '--recipient',
      q: { recipient: probe.recipient },
      sql: `select m.mid from recipients r join messages m on m.mid = r.mid where r.address = ? ${newest}`,
      args: [probe.recipient],
    },
    {
      name: '--subject (1 % of records)',
      q: { subject: 'pallet' },
      sql: `select m.mid from subjects s join messages m on m.mid = s.rowid where s.subject match ? ${newest}`,
      args: ['pallet'],
    },
    {
      name: '--subject (rare)',
      q: { subject: 'zephyrine' },
      sql: `select m.mid from subjects s join messages m on m.mid = s.rowid where s.subject match ? ${newest}`,
      args: ['zephyrine'],
    },
    {
      name: '--message-id',
      q: { messageId: probe.messageId },
      sql: `select m.mid from messages m where m.message_id = ? ${newest}`,
      args: [probe.messageId],
    },
    { name: '--mid', q: { mid: probe.mid }, sql: 'select m.mid from messages m where m.mid = ?', args: [probe.mid] },
    {
      name: '--ip',
      q: { ip: probe.ip },
      sql: `select m.mid from messages m where m.sender_ip = ? ${newest}`,
      args: [probe.ip],
    },
    {
      name: '--sha256',
      q: { sha256: probe.sha256 },
      sql: `select m.mid from attachments a join messages m on m.mid = a.mid where a.sha256 = ? ${newest}`,
      args: [probe.sha256],
    },
    {
      name: '--attachment',
      q: { attachment: probe.attachment },
      sql: `select m.mid from attachments a join messages m on m.mid = a.mid where a.name = ? collate nocase ${newest}`,
      args: [probe.attachment],
    },
    {
      name: '--url-domain',
      q: { urlDomain: probe.domain },
      sql: `select m.mid from urls u join messages m on m.mid = u.mid where u.domain = ? ${newest}`,
      args: [probe.domain],
    },
    {
      name: '--status bounced',
      q: { status: 'bounced' },
      sql: `select m.mid from messages m where m.status = ? ${newest}`,
      args: ['bounced'],
    },
    {
      name: '--since/--until (1 day)',
      q: { since: now - 10 * day, until: now - 9 * day },
      sql: `select m.mid from messages m where m.received_at >= ? and m.received_at < ? ${newest}`,
      args: [now - 10 * day, now - 9 * day],
    },
    {
      name: '--sender --since (25 days)',
      q: { sender: probe.sender, since: now - 25 * day },
      sql: `select m.mid from messages m where m.sender = ? and m.received_at >= ? ${newest}`,
      args: [probe.sender, now - 25 * day],
    },
    {
      name: '--level 3 (4 % of records)',
      q: { level: 3 },
      sql: `select m.mid from messages m where m.threat_level >= ? ${newest}`,
      args: [3],
    },
    {
      name: '--level 5',
      q: { level: 5 },
      sql: `select m.mid from messages m where m.threat_level >= ? ${newest}`,
      args: [5],
    },
    {
      name: '--rule OUTBREAK_0000042',
      q: { rule: 'OUTBREAK_0000042' },
      sql: `select m.mid from message_rules r join messages m on m.mid = r.mid where r.rule_id = ? ${newest}`,
      args: ['OUTBREAK_0000042'],
    },
    {
      name: '--rule ADAPTIVE_URGENCY (2 %)',
      q: { rule: 'ADAPTIVE_URGENCY' },
      sql: `select m.mid from message_rules r join messages m on m.mid = r.mid where r.rule_id = ? ${newest}`,
      args: ['ADAPTIVE_URGENCY'],
    },
    {
      name: '--level 3 --since/--until (1 day)',
      q: { level: 3, since: now - 10 * day, until: now - 9 * day },
      sql: `select m.mid from messages m where m.threat_level >= ? and m.received_at >= ? and m.received_at < ? ${newest}`,
      args: [3, now - 10 * day, now - 9 * day],
    },
  ];

  const results: TrackingResult['queries'] = [];
  try {
    for (const { name, q, sql, args } of queries) {
      const params = new URLSearchParams();
      for (const [k, val] of Object.entries({ ...q, limit: LIMIT })) params.set(k, String(val));
      const url = `${base}?${params}`;
      const viaApi = async (): Promise<Array<{ mid: number }>> => {
        const r = await fetch(url, { headers: auth });
        const body = (await r.json()) as { messages: Array<{ mid: number }> };
        if (!r.ok) throw new Error(`GET ${url}: ${r.status} ${JSON.stringify(body)}`);
        return body.messages;
      };
      const viaSearch = (): Array<{ mid: number }> => gw.gateway.tracker.search({ ...q, limit: LIMIT });
      const stmt = ref.prepare(sql);
      const viaSql = (): Array<{ mid: number }> => stmt.all(...args) as Array<{ mid: number }>;
      // one warm-up each, then the three ways in turn, so that drift in the machine hits them alike
      let apiRows = await viaApi();
      let rows = viaSearch();
      let rawRows = viaSql();
      const api: number[] = [];
      const search: number[] = [];
      const raw: number[] = [];
      for (let i = 0; i < runs; i++) {
        let s = performance.now();
        apiRows = await viaApi();
        api.push(performance.now() - s);
        s = performance.now();
        rows = viaSearch();
        search.push(performance.now() - s);
        s = performance.now();
        rawRows = viaSql();
        raw.push(performance.now() - s);
      }
      const mids = (xs: Array<{ mid: number }>): string =>
        xs
          .map((x) => x.mid)
          .sort((a, b) => a - b)
          .join();
      const timing = (xs: number[]): TrackingTiming => ({ p50: pct(xs, 50), p99: pct(xs, 99) });
      results.push({
        name,
        api: timing(api),
        search: timing(search),
        rawSql: timing(raw),
        sql,
        rows: rows.length,
        apiRows: apiRows.length,
        rawRows: rawRows.length,
        sameMids: mids(apiRows) === mids(rows) && mids(rawRows) === mids(rows),
      });
    }
  } finally {
    ref.close();
    await gw.stop();
  }
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  return { records, loadSeconds, gatewayStartSeconds, dbMb, runs, limit: LIMIT, peakRssMb, queries: results };
}
