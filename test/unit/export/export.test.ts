// pinwatch export: JSON Lines round-trip (what the store holds comes back equal), and the Perfetto trace decoded
// against the TrackEvent schema (no trace_processor is packaged for npm or Debian 12: `npm view
// @perfetto/trace_processor` 404, `apt-cache search perfetto` empty), its structure asserted, and the wire field
// numbers checked against upstream's independently of our .proto subset.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { parseJsonl, jsonlLines } from '../../../collector/export/jsonl.ts';
import { perfettoTrace, perfettoTypes } from '../../../collector/export/perfetto.ts';
import { RecordingRows } from '../../../collector/export/recording.ts';
import { Store } from '../../../collector/store/index.ts';
import { main as run } from '../../../cli/main.ts';
import { BUF, Harness, PAGE } from '../pipeline/harness.ts';
import { SESSION, tempDir } from '../store/helpers.ts';

const SHIPPED = fileURLToPath(new URL('../../../web/recordings/scenarios-6.18.db', import.meta.url));

/** A fresh recording of the MAP_FIXED case written by the real store. */
function mapFixedRecording(dir: string): string {
  const file = join(dir, 'mapfixed.db');
  const store = Store.open(file);
  store.startSession(SESSION);
  const h = new Harness().anonBuffer(100, BUF, 4, 0x1000);
  (h.c as unknown as { sinks: unknown[] }).sinks.push(store);
  h.registerRing(100, 5, [[BUF, 4 * PAGE]]);
  h.tick(300);
  h.pagemap.map(100, BUF + PAGE, 0x9000, 1);
  h.feed(h.ev.mmapFixed(100, BUF + PAGE, PAGE));
  h.tick(1500);
  h.feed(h.ev.pinResult(100, 5, 0, 0, { opcode: 1 }), h.ev.exit(100));
  h.c.verifyNow();
  store.endSession();
  store.close();
  return file;
}

describe('export', () => {
  for (const [name, file] of [['the shipped recording (schema 1)', () => SHIPPED], ['a fresh MAP_FIXED recording', (t: { after(fn: () => void): void }) => mapFixedRecording(tempDir(t))]] as const) {
    test(`jsonl round-trips ${name}`, (t) => {
      const rec = new RecordingRows(file(t));
      t.after(() => rec.close());
      const text = [...jsonlLines(rec)].join('');
      assert.ok(text.split('\n').slice(0, -1).every((l) => l.startsWith('{"type":')), 'one JSON object per line');
      const back = parseJsonl(text);
      assert.deepEqual(back.sessions, rec.sessions());
      assert.deepEqual(back.events, JSON.parse(JSON.stringify([...rec.events()])));
      assert.deepEqual(back.pagemapReads, [...rec.pagemapReads()]);
      assert.deepEqual(back.pins, [...rec.pins()]);
      assert.deepEqual(back.anomalies, rec.anomalies());
      assert.deepEqual(back.incidents, rec.incidents());
      assert.ok(back.events.length > 0 && back.anomalies.length > 0 && back.incidents.length > 0);
      // The store's own queries agree (what a user of the SQLite file sees).
      const store = Store.open(rec.file, { readonly: true });
      t.after(() => store.close());
      assert.deepEqual(back.anomalies, store.anomalies());
      assert.deepEqual(back.incidents, store.incidents());
      assert.equal(back.events.length, store.events({ limit: 1e9 }).length);
    });
  }

  test('perfetto: decodes as a TrackEvent trace; one track per process and per pin, anomalies as instants', (t) => {
    const rec = new RecordingRows(mapFixedRecording(tempDir(t)));
    t.after(() => rec.close());
    const out = perfettoTrace(rec);
    const { Trace } = perfettoTypes();
    const trace = Trace.toObject(Trace.decode(out.bytes), { longs: Number, enums: String, defaults: false }) as {
      packet: { timestamp?: number; timestampClockId?: number; trustedPacketSequenceId?: number; trackDescriptor?: { uuid: number; parentUuid?: number; name?: string; process?: { pid: number; processName: string } }; trackEvent?: { type: string; trackUuid: number; name?: string; categories?: string[]; debugAnnotations?: { name: string; intValue?: number; stringValue?: string; boolValue?: boolean }[] } }[];
    };
    const tracks = new Map(trace.packet.filter((p) => p.trackDescriptor).map((p) => [p.trackDescriptor!.uuid, p.trackDescriptor!]));
    const processes = [...tracks.values()].filter((d) => d.process);
    assert.deepEqual(processes.map((d) => [d.process!.pid, d.process!.processName]), [[100, 'app']]);
    const pinTracks = [...tracks.values()].filter((d) => d.parentUuid !== undefined);
    assert.equal(pinTracks.length, 1);
    assert.equal(pinTracks[0]!.parentUuid, processes[0]!.uuid);
    assert.match(pinTracks[0]!.name!, /^pin 1: io_uring ring fd 5 slot 0 @0x7f1234560000 \(4 pages\)$/);

    const events = trace.packet.filter((p) => p.trackEvent);
    for (const p of events) {
      assert.ok(tracks.has(p.trackEvent!.trackUuid), 'every event is on a described track');
      assert.equal(p.timestampClockId, 3, 'CLOCK_MONOTONIC');
      assert.equal(p.trustedPacketSequenceId, 1);
    }
    const ts = events.map((p) => p.timestamp!);
    assert.deepEqual(ts, [...ts].sort((a, b) => a - b), 'in time order');
    const onPin = events.filter((p) => p.trackEvent!.trackUuid === pinTracks[0]!.uuid).map((p) => `${p.trackEvent!.type} ${p.trackEvent!.name ?? ''}`);
    // The divergence is confirmed by pagemap right after the zap; the zap of an io_uring buffer is judged (hazard,
    // not teardown) only when the unregister shows it came too late, and the leak with it (rules/sources/teardown.ts).
    assert.deepEqual(onPin, [
      'TYPE_SLICE_BEGIN io_uring ring fd 5 slot 0',
      'TYPE_INSTANT pin-pte-divergence',
      'TYPE_INSTANT pinned-range-zapped',
      'TYPE_INSTANT pin-leak',
      'TYPE_SLICE_END ',
    ]);
    const div = events.find((p) => p.trackEvent!.name === 'pin-pte-divergence')!.trackEvent!;
    assert.deepEqual(div.categories, ['anomaly', 'critical']);
    const ann = Object.fromEntries(div.debugAnnotations!.map((a) => [a.name, a.stringValue ?? a.intValue ?? a.boolValue]));
    assert.equal(ann.confirmed, true);
    assert.equal(ann.pinned_pfn, '0x1001');
    assert.equal(ann.current_pfn, '0x9000');
    assert.match(String(ann.incident), /^MAP_FIXED replaced 1 pinned page of io_uring buffer 0/);
    const kinds = events.filter((p) => p.trackEvent!.trackUuid === processes[0]!.uuid).map((p) => p.trackEvent!.name);
    assert.ok(kinds.includes('mmap_fixed') && kinds.includes('pin_result') && kinds.includes('exit'), kinds.join(','));
    assert.equal(out.instants, kinds.length + 3);
  });

  test("perfetto: wire field numbers are upstream's (perfetto_trace.proto), read without our .proto", () => {
    // Upstream: Trace.packet=1; TracePacket.timestamp=8, trusted_packet_sequence_id=10, track_event=11,
    // timestamp_clock_id=58, track_descriptor=60; TrackEvent.type=9, track_uuid=11, name=23;
    // TrackDescriptor.uuid=1, name=2, process=3, parent_uuid=5; ProcessDescriptor.pid=1, process_name=6.
    const { Trace } = perfettoTypes();
    const bytes = Trace.encode(Trace.fromObject({ packet: [
      { trustedPacketSequenceId: 1, trackDescriptor: { uuid: 7, name: 'p', process: { pid: 42, processName: 'q' } } },
      { timestamp: 5, timestampClockId: 3, trustedPacketSequenceId: 1, trackEvent: { type: 3, trackUuid: 7, name: 'x' } },
    ] })).finish();
    const fields = (buf: Uint8Array): [number, number | Uint8Array][] => {
      const r = protobuf.Reader.create(buf);
      const out: [number, number | Uint8Array][] = [];
      while (r.pos < r.len) {
        const tag = r.uint32();
        const wire = tag & 7;
        out.push([tag >>> 3, wire === 0 ? Number(r.uint64()) : r.bytes()]);
      }
      return out;
    };
    const packets = fields(bytes);
    assert.deepEqual(packets.map(([f]) => f), [1, 1]);
    const desc = fields(packets[0]![1] as Uint8Array);
    assert.deepEqual(desc.map(([f]) => f), [10, 60]);
    const td = fields(desc[1]![1] as Uint8Array);
    assert.deepEqual(td.map(([f]) => f).sort((a, b) => a - b), [1, 2, 3]);
    assert.deepEqual(fields(td.find(([f]) => f === 3)![1] as Uint8Array).map(([f]) => f).sort((a, b) => a - b), [1, 6]);
    const ev = fields(packets[1]![1] as Uint8Array);
    assert.deepEqual(ev.map(([f]) => f).sort((a, b) => a - b), [8, 10, 11, 58]);
    const te = fields(ev.find(([f]) => f === 11)![1] as Uint8Array);
    assert.deepEqual(te.map(([f, v]) => `${f}:${typeof v === 'number' ? v : Buffer.from(v).toString()}`).sort(), ['11:7', '23:x', '9:3']);
  });

  test('the CLI: --out writes the file; bad input is one line with a fix; perfetto to a terminal is refused', async (t) => {
    const dir = tempDir(t);
    const lines: string[] = [];
    const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l), onSignal: () => () => {}, exit: (c: number): never => { throw new Error(`exit ${c}`); }, logLevel: 'silent' };
    const out = join(dir, 'x.jsonl');
    assert.equal(await run(['export', '--format', 'jsonl', '--db', SHIPPED, '--out', out], io), 0);
    assert.equal(parseJsonl(readFileSync(out, 'utf8')).anomalies.length, 8);
    assert.equal(await run(['export', '--format', 'perfetto', '--db', SHIPPED, '--out', join(dir, 't.pftrace')], io), 0);
    assert.ok(readFileSync(join(dir, 't.pftrace')).length > 1000);
    lines.length = 0;
    assert.equal(await run(['export', '--format', 'jsonl', '--db', join(dir, 'missing.db')], io), 2);
    assert.match(lines.join('\n'), /--db file .*missing\.db does not exist/);
    const { exportCommand } = await import('../../../cli/export.ts');
    lines.length = 0;
    assert.equal(await exportCommand({ format: 'perfetto', db: SHIPPED }, io, true), 2);
    assert.match(lines.join('\n'), /fix: pass --out/);
  });
});
