/**
 * A small authoritative DNS server for the dns kind's tests (tests/dns_probe*.test.ts), written
 * with dns-packet: UDP and TCP on the same port of 127.0.0.1 or ::1, and DNS over TLS (RFC 7858)
 * on a port of its own with a certificate of tests/helpers/certs.ts. It answers a zone it holds
 * (ZONE) and logs every query it reads (transport, source address, id, RD bit, type, class).
 *
 * Names of a zone "example.com" that make it misbehave, for the failure paths:
 *   nx.*        NXDOMAIN                 servfail.*   SERVFAIL
 *   silent.*    no reply at all          garbage.*    5 bytes that are no DNS message
 *   truncated.* TC bit set, no records   wrongid.*    a reply with another id (only that)
 *   lateid.*    a reply with another id, then the right one
 *   closes.*    TCP: the connection is closed without a reply; UDP: no reply
 *   half.*      TCP: half a reply, then close
 * A UDP reply over 512 bytes is cut to its header and question with TC set (RFC 1035 4.2.1), as
 * servers do for queries without EDNS. A query without the RD bit for "recursive.example.com" gets REFUSED, as blackbox's
 * recursiveDNSHandler does.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import packet, { type Answer, type DecodedPacket } from "dns-packet";

/** One query the server read. */
export interface LoggedQuery {
  transport: "udp" | "tcp" | "tls";
  /** Source address of the query (the prober's source_ip_address). */
  from: string;
  id: number;
  rd: boolean;
  name: string;
  /** Type and class numbers as on the wire. */
  qtype: number;
  qclass: number;
  /** DoT: the server name the client sent (SNI); false when it sent none. */
  sni?: string | false;
}

const TTL = 3600;
const a = (name: string, type: string, data: unknown, klass = "IN", ttl = TTL) => ({ name, type, class: klass, ttl, data }) as Answer;

/** The zone: records by lower-case owner name. Text forms (miekg) are in tests/dns_probe.test.ts. */
export const ZONE: Record<string, Answer[]> = {
  "example.com": [
    a("example.com", "A", "127.0.0.1"),
    a("example.com", "A", "127.0.0.2"),
    a("example.com", "AAAA", "2001:db8::1"),
    a("example.com", "MX", { preference: 10, exchange: "mail.example.com" }),
    a("example.com", "TXT", ["v=spf1 -all", 'say "hi"\\']),
    a("example.com", "SOA", { mname: "ns1.example.com", rname: "host\\.master.example.com", serial: 2024010101, refresh: 7200, retry: 3600, expire: 1209600, minimum: 300 }),
    a("example.com", "NS", "ns1.example.com"),
    a("example.com", "NS", "ns2.example.com"),
    a("example.com", "CAA", { flags: 0, tag: "issue", value: "letsencrypt.org" }),
    a("example.com", "TXT", ["goCHAOS"], "CH"),
  ],
  "www.example.com": [a("www.example.com", "CNAME", "example.com", "IN", 300)],
  "_dns._udp.example.com": [a("_dns._udp.example.com", "SRV", { priority: 0, weight: 5, port: 53, target: "ns1.example.com" })],
  "1.0.0.127.in-addr.arpa": [a("1.0.0.127.in-addr.arpa", "PTR", "example.com")],
  "mapped.example.com": [a("mapped.example.com", "AAAA", "::ffff:1.2.3.4"), a("mapped.example.com", "AAAA", "2001:db8:0:0:1:0:0:1")],
  "empty.example.com": [],
  // Presentation-form corner cases (escapes, RFC 3597, RFC 5952): tests/dns_probe_rrtext.test.ts.
  "odd.example.com": [
    a("odd.example.com", "TXT", [Buffer.from([0x00, 0xc8, 0x22, 0x5c, 0x41]), "two words"]),
    a("a b@c;d.example.com", "A", "10.0.0.1"),
    a("odd.example.com", "HINFO", { cpu: "x86 64", os: 'Li"nux' }),
    a("odd.example.com", "SPF", Buffer.from("\x0bv=spf1 -all")),
    a("odd.example.com", "UNKNOWN_65280", Buffer.from([10, 0, 0, 1])),
    a("odd.example.com", "DNAME", "target.example.net"),
    a("odd.example.com", "AAAA", "2001:0:0:1::1"),
    a("odd.example.com", "AAAA", "::"),
    a("odd.example.com", "MX", { preference: 0, exchange: "." }),
  ],
  "recursive.example.com": [a("recursive.example.com", "A", "127.0.0.1")],
};

/** Authority and additional sections of every NOERROR reply in the zone. */
const AUTHORITY = [a("example.com", "NS", "ns1.example.com", "IN", 7200), a("example.com", "NS", "ns2.example.com", "IN", 7200)];
const ADDITIONAL = [a("ns1.example.com", "A", "127.0.0.53", "IN", 7200), a("ns2.example.com", "AAAA", "::1", "IN", 7200)];

const TYPE_NUM: Record<string, number> = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, CAA: 257 };
const CLASS_NUM: Record<string, number> = { IN: 1, CH: 3 };

/** The raw question section of a query (echoed as read, so types and classes dns-packet does not know survive). */
function rawQuestion(q: Buffer): Buffer {
  let off = 12;
  while (off < q.length && q[off] !== 0) off += q[off]! + 1;
  return q.subarray(12, off + 5);
}

/** Builds a reply: the query's header id and RD bit, its question as read, and the sections given. */
function reply(q: Buffer, id: number, rd: boolean, rcode: number, answers: Answer[], authorities: Answer[] = [], additionals: Answer[] = [], tc = false): Buffer {
  const flags = packet.AUTHORITATIVE_ANSWER | (rd ? packet.RECURSION_DESIRED : 0) | (tc ? packet.TRUNCATED_RESPONSE : 0) | rcode;
  const body = packet.encode({ type: "response", id, flags, questions: [], answers, authorities, additionals });
  const out = Buffer.concat([body.subarray(0, 12), rawQuestion(q), body.subarray(12)]);
  out.writeUInt16BE(1, 4);
  return out;
}

/** A UDP reply too large for 512 bytes (RFC 1035 4.2.1; queries carry no EDNS): header and question only, TC set. */
function truncate(m: Buffer): Buffer {
  const out = Buffer.concat([m.subarray(0, 12), rawQuestion(m)]);
  out.writeUInt16BE(out.readUInt16BE(2) | packet.TRUNCATED_RESPONSE, 2);
  out.fill(0, 6, 12);
  return out;
}

/** What the server does with one query: bytes to send (one or more messages), or nothing. */
export type Handler = (q: DecodedPacket, raw: Buffer, log: LoggedQuery) => Buffer[];

/** The zone's handler with the misbehaving names of the file's docstring. */
export const zoneHandler: Handler = (q, raw, log) => {
  const name = log.name.toLowerCase().replace(/\.$/, "");
  const first = name.split(".")[0];
  const ok = (answers: Answer[], tc = false) => reply(raw, log.id, log.rd, 0, answers, answers.length ? AUTHORITY : [], answers.length ? ADDITIONAL : [], tc);
  switch (first) {
    case "nx": return [reply(raw, log.id, log.rd, 3, [], AUTHORITY.slice(0, 1))];
    case "servfail": return [reply(raw, log.id, log.rd, 2, [])];
    case "silent": return [];
    case "garbage": return [Buffer.from([1, 2, 3, 4, 5])];
    case "truncated": return [ok([], true)];
    case "wrongid": return [reply(raw, (log.id + 1) & 0xffff, log.rd, 0, ZONE["example.com"]!.slice(0, 1))];
    case "lateid": return [reply(raw, (log.id + 1) & 0xffff, log.rd, 0, []), ok(ZONE["example.com"]!.slice(0, 1))];
    case "closes": return [];
    case "half": return [];
  }
  if (name === "recursive.example.com" && !log.rd) return [reply(raw, log.id, log.rd, 5, [])];
  const records = ZONE[name];
  if (!records) return [reply(raw, log.id, log.rd, 3, [])];
  const matching = records.filter((r) => (log.qtype === 255 || r.type === "CNAME" || TYPE_NUM[r.type] === log.qtype) && (log.qclass === 255 || CLASS_NUM[(r as { class?: string }).class ?? "IN"] === log.qclass));
  return [ok(matching)];
};

/** A running test server. */
export interface DnsTestServer {
  host: string;
  /** UDP and TCP port (the same number). */
  port: number;
  /** DNS over TLS port (0 without certificates). */
  tlsPort: number;
  /** Every query read, in order. */
  queries: LoggedQuery[];
  /** Replaceable: what the server answers. */
  handler: Handler;
  /** Replies are sent this many milliseconds after the query is read (default 0). */
  delayMs: number;
  close(): Promise<void>;
}

/** Runs `f` now, or after the server's delayMs. */
function later(s: DnsTestServer, f: () => void): void {
  if (s.delayMs > 0) setTimeout(f, s.delayMs);
  else f();
}

/** Reads one query, logs it and returns what to send; undefined for a query that does not decode. */
function handle(s: DnsTestServer, raw: Buffer, transport: LoggedQuery["transport"], from: string, sni?: string | false): Buffer[] | undefined {
  let q: DecodedPacket;
  try {
    q = packet.decode(raw);
  } catch {
    return undefined;
  }
  const qs = rawQuestion(raw);
  const log: LoggedQuery = { transport, from, id: q.id ?? 0, rd: ((q.flags ?? 0) & packet.RECURSION_DESIRED) !== 0, name: q.questions?.[0]?.name ?? "", qtype: qs.readUInt16BE(qs.length - 4), qclass: qs.readUInt16BE(qs.length - 2), ...(transport === "tls" ? { sni } : {}) };
  s.queries.push(log);
  return s.handler(q, raw, log);
}

/** Serves RFC 1035 4.2.2 framing on a TCP or TLS connection. */
function serveStream(s: DnsTestServer, c: net.Socket, transport: "tcp" | "tls", open: Set<net.Socket>): void {
  let buf = Buffer.alloc(0);
  open.add(c);
  c.on("close", () => open.delete(c));
  c.on("error", () => {});
  c.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
      buf = buf.subarray(2 + msg.length);
      const name = (() => { try { return packet.decode(msg).questions?.[0]?.name.split(".")[0] ?? ""; } catch { return ""; } })();
      const out = handle(s, msg, transport, c.remoteAddress ?? "", (c as tls.TLSSocket).servername ?? undefined);
      if (name === "closes") return void c.destroy();
      if (name === "half") {
        const full = out?.[0] ?? reply(msg, 0, false, 0, ZONE["example.com"]!);
        const framed = Buffer.concat([Buffer.from([full.length >> 8, full.length & 255]), full]);
        return void c.end(framed.subarray(0, framed.length >> 1));
      }
      for (const m of out ?? []) later(s, () => c.destroyed || c.write(Buffer.concat([Buffer.from([m.length >> 8, m.length & 255]), m])));
    }
  });
}

/** Where and how a test server listens. */
export interface DnsServerOptions {
  /** UDP and TCP port (default: a free one). */
  port?: number;
  /** PEM files of the DNS over TLS listener; without them there is none. */
  certs?: { cert: string; key: string };
  /** DoT port (default: a free one). */
  tlsPort?: number;
}

/** Starts the server on `host` (127.0.0.1, ::1 or another loopback address): UDP and TCP on one port, DoT when certs are given. */
export async function startDnsServer(host: string, o: DnsServerOptions = {}): Promise<DnsTestServer> {
  const s: DnsTestServer = { host, port: 0, tlsPort: 0, queries: [], handler: zoneHandler, delayMs: 0, close: async () => {} };
  const open = new Set<net.Socket>();
  let udp: UdpSocket | undefined;
  let tcp: net.Server | undefined;
  for (let attempt = 0; !udp; attempt++) {
    tcp = net.createServer((c) => serveStream(s, c, "tcp", open));
    await new Promise<void>((r, j) => tcp!.once("error", j).listen(o.port ?? 0, host, r));
    const port = (tcp.address() as net.AddressInfo).port;
    const u = createSocket(net.isIP(host) === 6 ? "udp6" : "udp4");
    const bound = await new Promise<boolean>((r) => {
      u.once("error", () => r(false));
      u.bind(port, host, () => r(true));
    });
    if (bound) [udp, s.port] = [u, port];
    else {
      await new Promise((r) => tcp!.close(r));
      if (attempt > 20 || o.port) throw new Error(`UDP port ${port} of ${host} is taken`);
    }
  }
  udp.on("error", () => {});
  udp.on("message", (msg, rinfo) => {
    for (const m of handle(s, msg, "udp", rinfo.address) ?? []) later(s, () => udp!.send(m.length > 512 ? truncate(m) : m, rinfo.port, rinfo.address));
  });
  let dot: tls.Server | undefined;
  if (o.certs) {
    dot = tls.createServer({ cert: readFileSync(o.certs.cert), key: readFileSync(o.certs.key) }, (c) => serveStream(s, c, "tls", open));
    dot.on("tlsClientError", () => {});
    await new Promise<void>((r, j) => dot!.once("error", j).listen(o.tlsPort ?? 0, host, r));
    s.tlsPort = (dot.address() as net.AddressInfo).port;
  }
  s.close = async () => {
    udp!.close();
    for (const c of open) c.destroy();
    await Promise.all([tcp, dot].map((srv) => srv && new Promise((r) => srv.close(r))));
  };
  return s;
}
