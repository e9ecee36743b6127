/**
 * The UDP responder (lib/probes/udp/responder.ts) on 127.0.0.1 / ::1 with real datagrams: a valid
 * probe is answered with a reply of the same length whose tag verifies and whose times are sane;
 * wrong magic, truncated, oversize, bad tag, another key's tag, and reply-type packets get nothing;
 * a flood far above the rate limit gets no more replies than the token bucket allows; random
 * garbage never stops it. Every reply carries its flow's reflector count (per source port and
 * nonce, verified requests only, the least recently seen flow forgotten first).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { FLAG_TRACE, HEADER_LEN, MAX_PROBE_LEN, TYPE_REPLY, TYPE_REQUEST, parseProbe, toReply, writeRequest } from "../lib/probes/udp/packet.ts";
import { UdpResponder } from "../lib/probes/udp/responder.ts";
import { UdpSocket, realtimeUnixNs } from "../lib/probes/udp/socket.ts";

const KEY = new Uint8Array(32).fill(7);
const OTHER = new Uint8Array(32).fill(9);
const open: { close(): void }[] = [];
afterAll(() => open.forEach((o) => o.close()));

function responder(opts: Partial<ConstructorParameters<typeof UdpResponder>[0]> = {}): UdpResponder {
  const r = new UdpResponder({ port: 0, keys: () => [KEY], drainMs: 1, ...opts });
  open.push(r);
  return r;
}

function client(): UdpSocket {
  const s = new UdpSocket(0);
  open.push(s);
  return s;
}

function request(len: number, key = KEY, sequence = 1, dscp = 0): Uint8Array {
  const b = new Uint8Array(len);
  writeRequest(b, key, { dscp, flags: 0, nonce: 42n, sequence });
  return b;
}

/** Datagrams `s` receives within `ms` (copied). */
async function collect(s: UdpSocket, ms: number): Promise<{ bytes: Uint8Array; sourcePort: number; sourceIp: string }[]> {
  const out: { bytes: Uint8Array; sourcePort: number; sourceIp: string }[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    s.drain((d) => out.push({ bytes: d.buf.slice(d.offset, d.offset + d.len), sourcePort: d.sourcePort, sourceIp: d.sourceIp }));
    await Bun.sleep(5);
  }
  return out;
}

describe("udp responder", () => {
  test("answers from the address the probe was sent to (IP_PKTINFO), not the route's: a multi-homed host's replies match", async () => {
    // 127.0.0.0/8 is all this host's: a reply to 127.0.0.1 from 127.0.0.23 is what a host with
    // several addresses does when the prober addressed its second one.
    const r = responder();
    const c = client();
    for (const [i, ip] of ["127.0.0.23", "127.0.0.1", "127.1.2.3"].entries()) {
      const req = request(64, KEY, i + 1);
      c.send(req, req.length, c.sockaddr(ip, r.port));
      const got = await collect(c, 200);
      expect(got.map((g) => g.sourceIp)).toEqual([ip]);
    }
  });

  for (const ip of ["127.0.0.1", "::1"]) {
    test(`answers a valid probe over ${ip} with the same length, a verifying tag and sane times`, async () => {
      const r = responder();
      const c = client();
      const before = realtimeUnixNs();
      const req = request(200, KEY, 77, 10);
      expect(c.send(req, req.length, c.sockaddr(ip, r.port))).toBeGreaterThanOrEqual(0);
      const got = await collect(c, 300);
      const after = realtimeUnixNs();
      expect(got.length).toBe(1);
      expect(got[0]!.bytes.length).toBe(200);
      expect(got[0]!.sourcePort).toBe(r.port);
      const p = parseProbe(got[0]!.bytes, 200, [KEY])!;
      expect(p).not.toBeNull();
      expect(p.header.type).toBe(TYPE_REPLY);
      expect(p.header.sequence).toBe(77);
      expect(p.header.nonce).toBe(42n);
      expect(p.header.dscp).toBe(10);
      expect(p.header.rxNs >= before && p.header.rxNs <= after).toBe(true);
      expect(p.header.txNs >= p.header.rxNs && p.header.txNs <= after).toBe(true);
      expect(r.counters.answered).toBe(1);
    });
  }

  test("the previous key is accepted and the reply is tagged with it; no key yet answers nothing", async () => {
    let keys: Uint8Array[] = [];
    const r = responder({ keys: () => keys });
    const c = client();
    const dst = c.sockaddr("127.0.0.1", r.port);
    c.send(request(64), 64, dst);
    expect(await collect(c, 200)).toHaveLength(0);
    expect(r.counters.dropped.no_key).toBe(1);
    keys = [OTHER, KEY];
    c.send(request(64), 64, dst);
    const got = await collect(c, 300);
    expect(got).toHaveLength(1);
    expect(parseProbe(got[0]!.bytes, 64, [KEY])?.header.type).toBe(TYPE_REPLY);
  });

  test("answers nothing to wrong magic, truncated, oversize, bad tag, another key, a reply", async () => {
    const r = responder();
    const c = client();
    const dst = c.sockaddr("127.0.0.1", r.port);
    const badMagic = request(64);
    badMagic[0] = 0x51;
    const truncated = request(64).subarray(0, HEADER_LEN - 1);
    const oversize = new Uint8Array(MAX_PROBE_LEN + 100);
    oversize.set(request(64).subarray(0, HEADER_LEN));
    const badTag = request(64);
    badTag[50]! ^= 1;
    const spoofed = request(64, OTHER);
    const reply = request(64);
    toReply(reply, KEY, 1n, 2n);
    const tampered = request(64);
    tampered[16] = 9; // sequence changed after tagging
    for (const b of [badMagic, truncated, oversize, badTag, spoofed, reply, tampered]) expect(c.send(b, b.length, dst)).toBeGreaterThanOrEqual(0);
    expect(await collect(c, 300)).toHaveLength(0);
    expect(r.counters.answered).toBe(0);
    expect(r.counters.dropped.malformed).toBe(4);
    expect(r.counters.dropped.bad_tag).toBe(3);
    // ...and still answers a good one afterwards.
    c.send(request(64), 64, dst);
    expect(await collect(c, 300)).toHaveLength(1);
  });

  test("a flood far above the rate gets no more replies than the bucket allows", async () => {
    const rate = 50;
    const r = responder({ maxRate: rate });
    const c = client();
    const dst = c.sockaddr("127.0.0.1", r.port);
    const start = performance.now();
    const replies: Uint8Array[] = [];
    for (let i = 0; i < 2000; i++) {
      const b = request(64, KEY, i);
      c.send(b, 64, dst);
      if (i % 100 === 99) {
        await Bun.sleep(2);
        c.drain((d) => void replies.push(d.buf.slice(d.offset, d.offset + d.len)));
      }
    }
    replies.push(...(await collect(c, 300)).map((g) => g.bytes));
    const seconds = (performance.now() - start) / 1000;
    // Burst (one second's worth) plus the rate over the window: far below the 2000 sent.
    expect(replies.length).toBeLessThanOrEqual(rate + Math.ceil(rate * seconds) + 1);
    expect(replies.length).toBeGreaterThan(0);
    expect(r.counters.answered).toBe(replies.length);
    expect(r.counters.dropped.rate_limited).toBeGreaterThan(2000 / 2); // the rest (none, unless the kernel's queue overflowed)
  });

  test("one source is limited on its own: another source still gets answers", async () => {
    const r = responder({ maxRate: 10_000, perSourceRate: 20 });
    const flood = client();
    const other = client();
    const dst = flood.sockaddr("127.0.0.1", r.port);
    for (let i = 0; i < 500; i++) flood.send(request(64, KEY, i), 64, dst);
    const floodReplies = await collect(flood, 200);
    other.send(request(64), 64, other.sockaddr("127.0.0.1", r.port));
    expect(await collect(other, 300)).toHaveLength(1);
    expect(floodReplies.length).toBeLessThan(500);
    expect(r.counters.dropped.rate_limited).toBeGreaterThan(0);
  });

  test("random garbage never crashes it; it answers after", async () => {
    const r = responder();
    const c = client();
    const dst = c.sockaddr("127.0.0.1", r.port);
    for (let i = 0; i < 500; i++) {
      const b = randomBytes(1 + Math.floor(Math.random() * 300));
      if (i % 3 === 0 && b.length >= HEADER_LEN) b.writeUInt32BE(0x504d5531, 0); // magic, then garbage
      if (i % 6 === 0 && b.length >= HEADER_LEN) b[4] = TYPE_REQUEST;
      c.send(b, b.length, dst);
    }
    c.send(new Uint8Array(0), 0, dst);
    await collect(c, 200);
    c.send(request(64), 64, dst);
    const got = await collect(c, 300);
    expect(got).toHaveLength(1);
    expect(r.counters.answered).toBe(1);
  });

  test("every reply carries its flow's reflector count: per source port and nonce, from 1; trace probes and bad tags not counted; the least recently seen flow forgotten beyond maxFlows", async () => {
    const r = responder({ maxFlows: 2 });
    const [a, b] = [client(), client()];
    let seq = 100;
    /** Sends one request from `c` and returns its reply's count (null: no reply). */
    const ask = async (c: UdpSocket, nonce: bigint, opts: { flags?: number; corrupt?: boolean } = {}): Promise<number | null> => {
      const req = new Uint8Array(64);
      writeRequest(req, KEY, { dscp: 0, flags: opts.flags ?? 0, nonce, sequence: seq++ });
      if (opts.corrupt) req[45]! ^= 1;
      c.send(req, req.length, c.sockaddr("127.0.0.1", r.port));
      for (let i = 0; i < (opts.corrupt ? 40 : 400); i++) {
        let got: number | null = null;
        c.drain((d) => void (got = parseProbe(d.buf.subarray(d.offset, d.offset + d.len), d.len, [KEY])?.header.count ?? null));
        if (got !== null) return got;
        await Bun.sleep(5);
      }
      return null;
    };
    expect([await ask(a, 42n), await ask(a, 42n), await ask(a, 42n)]).toEqual([1, 2, 3]);
    expect(await ask(a, 43n)).toBe(1); // another nonce from the same port: another flow (a restarted prober)
    expect(await ask(a, 42n, { corrupt: true })).toBeNull();
    expect(await ask(a, 42n, { flags: FLAG_TRACE })).toBe(0);
    expect(await ask(a, 42n)).toBe(4);
    expect(await ask(b, 42n)).toBe(1); // another port: another flow; (a, 43) is the least recently seen, forgotten
    expect(r.countedFlows).toBe(2);
    expect(await ask(a, 43n)).toBe(1); // back after being forgotten: restarts (the prober resets); (a, 42) goes
    expect(await ask(b, 42n)).toBe(2);
    expect(await ask(a, 42n)).toBe(1);
    expect(r.counters.dropped.bad_tag).toBe(1);
  });

  test("requests over the rate limit are not counted: the count says how many got past it", async () => {
    const r = responder({ perSourceRate: 3 });
    const c = client();
    const dst = c.sockaddr("127.0.0.1", r.port);
    for (let i = 0; i < 10; i++) c.send(request(64, KEY, i), 64, dst);
    const counts = (await collect(c, 300)).map((g) => parseProbe(g.bytes, 64, [KEY])!.header.count);
    expect(counts).toEqual([1, 2, 3]); // a second's burst of 3, the rest dropped before counting
    expect(r.counters.dropped.rate_limited).toBe(7);
  });

  test("a port in use is a clear error naming it", () => {
    const r = responder();
    expect(() => new UdpResponder({ port: r.port, keys: () => [KEY] })).toThrow(new RegExp(`udp port ${r.port} is in use`));
  });
});
