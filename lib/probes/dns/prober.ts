/**
 * The DNS kind's agent half: blackbox_exporter's dns prober (prober/dns.go). One query to the
 * target DNS server on a fresh socket, with the phases
 *
 *   resolve  start -> the server's own name resolved (0 for an IP literal; preferred_ip_protocol)
 *   query    query written -> complete reply read (blackbox's "request")
 *
 * plus connect_seconds / tls_seconds for tcp and DNS over TLS (blackbox's "connect"). The reply's
 * rcode and section counts are reported whenever a reply was read; then rcode and the three
 * validate_*_rrs are checked in blackbox's order. Queries carry no EDNS, as blackbox's.
 * Durations are seconds from performance.now(); only `time` is wall-clock.
 */
import { randomInt } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import packet from "dns-packet";
import { DnsResultSchema, type DnsModule, type DnsResult, type DnsTarget } from "../../rpc/gen/probermesh/v1/dns_pb.ts";
import type { Prober, ProberStatus } from "../kind.ts";
import { resolveHostWithin, ResolveTimeoutError } from "../resolve.ts";
import { tlsOptions } from "../tls.ts";
import { checkReply } from "./checks.ts";
import { classCode, rcodeName, typeCode } from "./codes.ts";
import { DNS_DEFAULTS } from "./defaults.ts";
import { ProbeFailure, type FailedReason } from "./failed_reason.ts";
import { rrText } from "./rr_text.ts";
import { DNS_PORT, DOT_PORT, parseDnsTarget } from "./target.ts";
import { streamExchange, udpExchange, waitOnce, type Bounds, type ExchangeTimes, type Peer } from "./transport.ts";

/** A decoded reply. */
type Reply = ReturnType<typeof packet.decode>;

/**
 * The query of module `m` with message id `id`: one question for query_name (made fully
 * qualified, as miekg's dns.Fqdn) of query_type / query_class, RD as recursion_desired. The type
 * and class are written as numbers over dns-packet's encoding, which knows fewer mnemonics than
 * miekg (NONE, SVCB, ...).
 */
export function encodeQuery(m: DnsModule, id: number): Buffer {
  const q = packet.encode({ type: "query", id, flags: m.recursionDesired ? packet.RECURSION_DESIRED : 0, questions: [{ type: "A", name: m.queryName || ".", class: "IN" }] });
  q.writeUInt16BE(typeCode(m.queryType || DNS_DEFAULTS.queryType) ?? 255, q.length - 4);
  q.writeUInt16BE(classCode(m.queryClass || DNS_DEFAULTS.queryClass) ?? 1, q.length - 2);
  return q;
}

/** Decodes a reply. @throws ProbeFailure protocol when it is not a complete DNS message */
export function decodeReply(msg: Buffer): Reply {
  if (msg.length < 12) throw new ProbeFailure("protocol", `malformed reply: ${msg.length} bytes, shorter than a DNS header`);
  try {
    return packet.decode(msg);
  } catch (e) {
    throw new ProbeFailure("protocol", `malformed reply: ${(e as Error).message}`);
  }
}

/** The reply's response code: the header's four bits, extended by an OPT record's upper eight (RFC 6891). */
function rcodeOf(r: Reply): number {
  const opt = r.additionals?.find((a) => a.type === "OPT") as { extendedRcode?: number } | undefined;
  return ((r.flags ?? 0) & 0xf) | ((opt?.extendedRcode ?? 0) << 4);
}

/** Runs DNS probes. Stateless; the result a probe() call resolves with is final. */
export class DnsProber implements Prober<"dns"> {
  readonly type = "dns" as const;

  status(): ProberStatus {
    return { ready: true, message: "DNS probes over node:dgram / node:net / node:tls (udp, tcp, DNS over TLS; dns-packet)" };
  }

  async probe(target: DnsTarget, signal?: AbortSignal): Promise<DnsResult> {
    const m = target.module;
    const start = performance.now();
    const b: Bounds = { deadline: start + (m?.timeout ? durationMs(m.timeout) : DNS_DEFAULTS.timeoutMs), signal };
    const r = create(DnsResultSchema, { targetRegion: target.targetRegion, address: target.address, time: timestampFromMs(Date.now()) });
    const times: ExchangeTimes = { connect: 0, tls: 0, query: 0 };
    try {
      if (!m) throw new ProbeFailure("protocol", "no module");
      await this.run(target.address, m, b, r, times);
    } catch (e) {
      const f = e instanceof ProbeFailure ? e : new ProbeFailure("protocol", (e as Error).message);
      r.failedReason = f.reason satisfies FailedReason;
      r.error = f.message;
    }
    r.success = r.failedReason === "";
    r.querySeconds = times.query;
    r.connectSeconds = times.connect;
    r.tlsSeconds = times.tls;
    r.durationSeconds = (performance.now() - start) / 1000;
    return r;
  }

  close(): void {}

  /** Resolve, exchange, verdict; fills `r` as it goes. @throws ProbeFailure */
  private async run(address: string, m: DnsModule, b: Bounds, r: DnsResult, times: ExchangeTimes): Promise<void> {
    const server = parseDnsTarget(address);
    if (!server) throw new ProbeFailure("resolve", `not a DNS server address: ${address}`);
    // The resolver has its own deadline (resolveHostWithin): running out there is a resolve failure.
    const resolved = await waitOnce<{ ip: string; seconds: number }>({ deadline: Infinity, signal: b.signal }, "resolving", (ok, fail) => {
      resolveHostWithin(server.host, b.deadline - performance.now(), m.preferredIpProtocol === "ip6" ? "ip6" : "ip4", m.ipProtocolFallback).then(ok, (e: Error) =>
        fail(new ProbeFailure("resolve", e instanceof ResolveTimeoutError ? `${e.message} (the probe's timeout ran out while resolving)` : e.message)),
      );
      return () => {};
    });
    r.resolveSeconds = resolved.seconds;
    const peer: Peer = { ip: resolved.ip, port: server.port ?? (m.dnsOverTls ? DOT_PORT : DNS_PORT), source: m.sourceIpAddress };
    const id = randomInt(0, 0x10000);
    const query = encodeQuery(m, id);
    let reply: Reply;
    if (m.transportProtocol === "tcp" || m.dnsOverTls) {
      // blackbox: the certificate is checked against tls_config.server_name, else the target's host.
      const out = await streamExchange(peer, query, m.dnsOverTls ? tlsOptions(m.tlsConfig, server.host, []) : undefined, b, times);
      if (m.dnsOverTls) {
        r.tlsVersion = out.tlsVersion;
        r.sslEarliestCertExpiry = BigInt(out.certExpiry);
      }
      reply = decodeReply(out.reply);
      if (reply.id !== id) throw new ProbeFailure("protocol", `reply id ${reply.id} does not match the query's ${id}`);
    } else {
      // Another id: a late reply to an earlier query, ignored (miekg/dns); garbage fails.
      reply = await udpExchange(peer, query, (msg) => {
        const d = decodeReply(msg);
        return d.id === id ? d : undefined;
      }, b, times);
    }
    const rcode = rcodeOf(reply);
    r.rcode = rcodeName(rcode);
    r.answerRrs = reply.answers?.length ?? 0;
    r.authorityRrs = reply.authorities?.length ?? 0;
    r.additionalRrs = reply.additionals?.length ?? 0;
    if (m.queryType === "SOA") {
      for (const a of reply.answers ?? []) if (a.type === "SOA") r.serial = (a.data as { serial: number }).serial;
    }
    // A truncated reply is validated as it is, as blackbox (miekg/dns) does; the result says so.
    r.truncated = reply.flag_tc ?? false;
    checkReply(rcode, {
      answer: (reply.answers ?? []).map(rrText),
      authority: (reply.authorities ?? []).map(rrText),
      additional: (reply.additionals ?? []).map(rrText),
    }, m);
  }
}
