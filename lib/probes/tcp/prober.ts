/**
 * The TCP kind's agent half: blackbox_exporter's tcp prober (prober/tcp.go,
 * prober/query_response.go). One round against `host:port`:
 *
 *   resolve   start -> address chosen (preferred_ip_protocol / ip_protocol_fallback; 0 for an IP literal)
 *   connect   address chosen -> TCP established (bound to source_ip_address when given)
 *   tls       every TLS handshake of the round, summed: `tls: true` right after connect, and each
 *             `starttls` step of query_response (0 without TLS)
 *
 * then the query_response dialogue (lib/probes/tcp/dialogue.ts). The round succeeds when every
 * step did. Durations are seconds, differences of performance.now() readings; only `time` is
 * wall-clock. A failed round keeps the phases it completed. The certificate expiry and TLS
 * version are those of the last completed handshake, as blackbox's gauges are.
 *
 * The module's timeout bounds the whole round; the AbortSignal ends it early (failed_reason
 * timeout, error "aborted ..."). The connection is destroyed before probe() resolves.
 *
 * With TcpModule.flows >= 1 the round is instead the mesh's connect probe (lib/probes/tcp/flows.ts):
 * resolve as above, then one connection per flow from the first `flows` ports of the prober's
 * flow port range, reset after the handshake; `flows` in the result, connect_seconds the mean
 * kernel-measured SYN -> SYN-ACK time of the flows established by their first SYN. tls and
 * query_response do not apply then (the probe file refuses them; the prober ignores them).
 */
import net from "node:net";
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { TcpResultSchema, type TcpModule, type TcpResult, type TcpTarget } from "../../rpc/gen/probermesh/v1/tcp_pb.ts";
import type { Prober, ProberStatus } from "../kind.ts";
import { ResolveTimeoutError, resolveHostWithin, type Resolved } from "../resolve.ts";
import { tlsOptions } from "../tls.ts";
import { Conn } from "./conn.ts";
import { TCP_DEFAULTS } from "./defaults.ts";
import { runQueryResponse } from "./dialogue.ts";
import { ProbeFailure } from "./failed_reason.ts";
import { splitHostPortTarget } from "../host_port.ts";
import { flowPorts, parsePortRange, type PortRange } from "../flow/ports.ts";
import { TCP_FLOW_PORTS } from "./defaults.ts";
import { connectFlows, flowStats, flowVerdict } from "./flows.ts";

/**
 * Resolves `host` within what is left before `deadline` (performance.now() ms), or until `signal`
 * aborts. Any resolver failure, running out of time included, is failed_reason "resolve" (the
 * resolver is the cause, as for http).
 */
async function resolveWithin(host: string, m: TcpModule | undefined, deadline: number, signal?: AbortSignal): Promise<Resolved> {
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new ProbeFailure("timeout", "aborted while resolving"));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
  });
  aborted.catch(() => {});
  try {
    const answer = resolveHostWithin(host, deadline - performance.now(), m?.preferredIpProtocol === "ip6" ? "ip6" : "ip4", m?.ipProtocolFallback ?? TCP_DEFAULTS.ipProtocolFallback);
    return await Promise.race([answer, aborted]);
  } catch (e) {
    if (e instanceof ProbeFailure) throw e;
    const msg = (e as Error).message;
    throw new ProbeFailure("resolve", e instanceof ResolveTimeoutError ? `${msg} (the probe's timeout ran out while resolving)` : msg);
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** The source address for a connection to `ip`, refused when its family differs (Go: "mismatched local address type"). */
function sourceFor(ip: string, source: string | undefined): string | undefined {
  if (!source) return undefined;
  if (net.isIP(source) !== net.isIP(ip)) throw new ProbeFailure("connect", `source_ip_address ${source} is not of the address family of ${ip}`);
  return source;
}

/**
 * The TCP prober. Stateless apart from settings; safe to share across targets. The result a
 * probe() call resolves with is final: no socket event or timer can change it afterwards.
 */
export class TcpProber implements Prober<"tcp"> {
  readonly type = "tcp" as const;
  /** The source ports of the connect probe's flows (-agent.tcp.flow.ports). */
  readonly flowPorts: PortRange;

  /** @param opts.flowPorts the flow port range (default TCP_FLOW_PORTS, 40200-40215) */
  constructor(opts: { flowPorts?: PortRange } = {}) {
    this.flowPorts = opts.flowPorts ?? parsePortRange(TCP_FLOW_PORTS);
  }

  status(): ProberStatus {
    return { ready: true, message: `TCP probes over node:net / node:tls (connect, TLS, STARTTLS, query_response); connect probes over flows from ports ${this.flowPorts.first}-${this.flowPorts.last}` };
  }

  async probe(target: TcpTarget, signal?: AbortSignal): Promise<TcpResult> {
    const m = target.module;
    const timeoutMs = m?.timeout ? durationMs(m.timeout) : TCP_DEFAULTS.timeoutMs;
    const start = performance.now();
    const deadline = start + timeoutMs;
    const r = create(TcpResultSchema, { targetRegion: target.targetRegion, address: target.address, time: timestampFromMs(Date.now()) });
    const phases = { resolve: 0, connect: 0, tls: 0 };
    let conn: Conn | undefined;
    try {
      const hp = splitHostPortTarget(target.address);
      if (!hp) throw new ProbeFailure("connect", `${target.address} is not host:port`);
      if (signal?.aborted) throw new ProbeFailure("timeout", "aborted before the probe started");
      const resolved = await resolveWithin(hp.host, m, deadline, signal);
      phases.resolve = resolved.seconds;
      const source = sourceFor(resolved.ip, m?.sourceIpAddress);
      if (m && m.flows > 0) {
        const outcomes = await connectFlows({ ip: resolved.ip, port: hp.port, sourceIp: source, ports: flowPorts(this.flowPorts, m.flows), deadline, signal });
        r.flows = outcomes.map(flowStats);
        const v = flowVerdict(outcomes, timeoutMs);
        phases.connect = v.connectSeconds;
        if (v.failedReason) throw new ProbeFailure(v.failedReason, v.error);
      } else {
        let t = performance.now();
        conn = await Conn.open(resolved.ip, hp.port, source, deadline, signal);
        phases.connect = (performance.now() - t) / 1000;
        const c = conn;
        // Certificates are checked against tls_config.server_name, else the target's host (as blackbox).
        const handshake = async (step?: string) => {
          t = performance.now();
          const facts = await c.startTls(tlsOptions(m?.tlsConfig, hp.host.split("%")[0]!, [])).catch((e: unknown) => {
            throw step && e instanceof ProbeFailure ? new ProbeFailure(e.reason, `${step}: starttls: ${e.message}`) : e;
          });
          phases.tls += (performance.now() - t) / 1000;
          r.tlsVersion = facts.version;
          r.sslEarliestCertExpiry = BigInt(facts.certExpiry);
        };
        if (m?.tls) await handshake();
        await runQueryResponse(conn, m?.queryResponse ?? [], handshake);
      }
    } catch (e) {
      const f = e instanceof ProbeFailure ? e : new ProbeFailure("io", (e as Error).message);
      r.failedReason = f.reason;
      r.error = f.message;
    } finally {
      conn?.close();
    }
    r.success = r.failedReason === "";
    r.resolveSeconds = phases.resolve;
    r.connectSeconds = phases.connect;
    r.tlsSeconds = phases.tls;
    r.durationSeconds = (performance.now() - start) / 1000;
    return r;
  }

  close(): void {}
}
