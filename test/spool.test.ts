import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, writeSync, closeSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { Spool, type SpoolEnvelope } from '../src/spool/spool.ts';
import { tempDir } from './helpers/peers.ts';

function env(mid: number): SpoolEnvelope {
  return {
    mid,
    icid: 1,
    listener: 'in',
    direction: 'incoming',
    sender: 'a@x.test',
    recipients: ['b@y.test'],
    senderIp: '127.0.0.1',
    rdns: null,
    helo: 'h',
    tls: null,
    receivedAt: Date.now(),
  };
}

function scan(spool: Spool) {
  const corrupt: string[] = [];
  const found = [...spool.scan((_f, why) => corrupt.push(why))];
  return { found, corrupt };
}

test('concurrent appends share segment writes and every record reads back intact', async () => {
  const dir = tempDir('bw-spool-');
  const spool = new Spool(dir, true);
  await spool.init();
  const bodies = Array.from({ length: 300 }, (_, i) => Buffer.from(`Subject: m${i}\r\n\r\n${'x'.repeat(i * 7)}\r\n`));
  const locs = await Promise.all(bodies.map((b, i) => spool.append(env(i + 1), b)));
  assert.ok(new Set(locs.map((l) => l.file)).size < 10, 'appends are grouped into few writes/segments');
  for (const [i, l] of locs.entries()) {
    const fd = openSync(l.file, 'r');
    const buf = Buffer.alloc(l.size);
    (await import('node:fs')).readSync(fd, buf, 0, l.size, l.bodyOffset);
    closeSync(fd);
    assert.deepEqual(buf, bodies[i]);
  }
  spool.close();
  const { found, corrupt } = scan(new Spool(dir, true));
  assert.deepEqual(corrupt, []);
  assert.deepEqual(
    found.map((m) => m.env.mid).sort((a, b) => a - b),
    bodies.map((_, i) => i + 1),
  );
});

test('recovery steps over a partial record and keeps the intact ones after it', async () => {
  const dir = tempDir('bw-spool-');
  const spool = new Spool(dir, true);
  await spool.init();
  const a = await spool.append(env(1), Buffer.from('first\r\n'));
  // a reserved range that a crash cut short: a header claiming more bytes than were written
  const fd = openSync(a.file, 'r+');
  const size = statSync(a.file).size;
  const partial = Buffer.concat([
    Buffer.from('BWR1'),
    Buffer.from([0, 0, 0, 50, 0, 0, 0, 200, 1, 2, 3, 4]),
    Buffer.from('{"mid":2'),
  ]);
  writeSync(fd, partial, 0, partial.length, size);
  closeSync(fd);
  spool.close();
  // the next record lands after the hole, as a concurrent write would
  const s2 = new Spool(dir, true);
  await s2.init();
  const seg = readdirSync(dir).find((f) => f.startsWith('seg-'))!;
  const segFile = path.join(dir, seg);
  const third = await s2.append(env(3), Buffer.from('third\r\n'));
  s2.close();
  // move record 3 into the same segment right after the partial one
  const rec3 = readFileSync(third.file).subarray(0, statSync(third.file).size);
  const fd2 = openSync(segFile, 'r+');
  writeSync(fd2, rec3, 0, rec3.length, size + partial.length + 13);
  closeSync(fd2);
  const { found, corrupt } = scan(new Spool(dir, true));
  const inSeg = found.filter((m) => m.file === segFile).map((m) => m.env.mid);
  assert.deepEqual(inSeg, [1, 3]);
  assert.equal(corrupt.length, 1);
  assert.match(corrupt[0], /partial records skipped/);
});

test('a large message gets a file of its own, committed with fsync and rename', async () => {
  const dir = tempDir('bw-spool-');
  const spool = new Spool(dir, true);
  await spool.init();
  const w = await spool.create(env(9));
  await w.write(Buffer.from('Subject: big\r\n\r\n'));
  await w.write(Buffer.alloc(300_000, 0x61));
  const loc = await w.commit();
  assert.equal(path.basename(loc.file), '9.msg');
  assert.equal(loc.size, 300_000 + 16);
  const { found } = scan(spool);
  assert.deepEqual(
    found.map((m) => [m.env.mid, m.size]),
    [[9, loc.size]],
  );
  spool.release(loc.file);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(readdirSync(dir), []);
});
