/**
 * The gRPC probe: blackbox_exporter's grpc prober (prober/grpc.go), the standard health check
 * grpc.health.v1.Health/Check, on a fresh connection per probe that it opens itself so that each
 * phase is measured at its socket event:
 *
 *   resolve  start -> DNS answer (0 for an IP literal)
 *   connect  DNS answer -> TCP established
 *   tls      TCP established -> TLS handshake done, ALPN h2 (0 without `tls`)
 *   check    HTTP/2 session and request sent -> grpc-status received (trailers)
 *
 * (blackbox's own "check" phase spans connect + tls + check: grpc-go dials lazily.) Success is
 * grpc-status 0 with serving status SERVING, as blackbox. Durations are seconds, differences of
 * performance.now(); only `time` is wall-clock. A probe that fails keeps the phases it completed.
 */
import type http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { GrpcResultSchema, type GrpcModule, type GrpcResult, type GrpcTarget } from "../../rpc/gen/probermesh/v1/grpc_pb.ts";
import type { Prober, ProberStatus } from "../kind.ts";
import { ResolveTimeoutError, resolveHostWithin } from "../resolve.ts";
import { handshakeFacts, tlsOptions } from "../tls.ts";
import { healthCheck } from "./call.ts";
import { ProbeFailure } from "./failure.ts";
import { splitHostPortTarget } from "../host_port.ts";
import { GRPC_DEFAULTS } from "./kind.ts";
import { Code, codeText } from "./status.ts";
import { waitForSocket } from "../socket_wait.ts";

/** TLS errors that mean "the server does not speak h2" rather than a failed handshake. */
const ALPN_REFUSED = /no.application.protocol/i;

/** Waits for `ok` on `sock` (lib/probes/socket_wait.ts) with gRPC's failures and status codes; a TLS server without h2 is "protocol". */
function waitFor(sock: net.Socket, ok: string, deadline: number, reason: "connect" | "tls", signal?: AbortSignal): Promise<void> {
  return waitForSocket(sock, ok, deadline, (outcome, e) => {
    if (outcome === "timeout") return new ProbeFailure("timeout", `timed out waiting for ${reason}`, Code.DEADLINE_EXCEEDED);
    if (outcome === "abort") return new ProbeFailure("timeout", "aborted", Code.CANCELLED);
    if (outcome === "close") return new ProbeFailure(reason, "connection closed", Code.UNAVAILABLE);
    const code = (e as NodeJS.ErrnoException).code ?? "";
    return reason === "tls" && ALPN_REFUSED.test(`${code} ${e!.message}`) ? new ProbeFailure("protocol", `TLS server refused ALPN h2: ${e!.message}`, Code.UNAVAILABLE) : new ProbeFailure(reason, e!.message, Code.UNAVAILABLE);
  }, signal);
}

/**
 * Resolves within what is left of the deadline; any failure is "resolve", running out of time
 * included (the resolver is the cause). An abort ends the wait at once ("timeout", CANCELLED); the
 * lookup itself finishes in the background and is dropped.
 */
async function resolveWithin(host: string, m: GrpcModule | undefined, deadline: number, signal?: AbortSignal) {
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new ProbeFailure("timeout", "aborted", Code.CANCELLED));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([resolveHostWithin(host, deadline - performance.now(), m?.preferredIpProtocol === "ip6" ? "ip6" : "ip4", m?.ipProtocolFallback ?? GRPC_DEFAULTS.ipProtocolFallback), aborted]);
  } catch (e) {
    if (e instanceof ProbeFailure) throw e;
    const msg = (e as Error).message;
    throw new ProbeFailure("resolve", e instanceof ResolveTimeoutError ? `${msg} (the probe's timeout ran out while resolving)` : msg);
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * The gRPC prober. Stateless; safe to share across targets. The result a probe() call resolves
 * with is final: the socket, HTTP/2 session and timers are released before it resolves.
 */
export class GrpcProber implements Prober<"grpc"> {
  readonly type = "grpc" as const;

  status(): ProberStatus {
    return { ready: true, message: "gRPC health checks (grpc.health.v1) over node:net / node:tls / node:http2, a fresh connection per probe" };
  }

  async probe(target: GrpcTarget, signal?: AbortSignal): Promise<GrpcResult> {
    const m = target.module;
    const timeoutMs = m?.timeout ? durationMs(m.timeout) : GRPC_DEFAULTS.timeoutMs;
    const start = performance.now();
    const deadline = start + timeoutMs;
    const r = create(GrpcResultSchema, { targetRegion: target.targetRegion, address: target.address, time: timestampFromMs(Date.now()) });
    let sock: net.Socket | undefined;
    let session: http2.ClientHttp2Session | undefined;
    try {
      const hp = splitHostPortTarget(target.address);
      if (!hp) throw new ProbeFailure("resolve", `target "${target.address}" is not host:port`);
      if (signal?.aborted) throw new ProbeFailure("timeout", "aborted", Code.CANCELLED);
      const resolved = await resolveWithin(hp.host, m, deadline, signal);
      r.resolveSeconds = resolved.seconds;
      if (signal?.aborted) throw new ProbeFailure("timeout", "aborted", Code.CANCELLED);
      let t = performance.now();
      sock = net.connect({ host: resolved.ip, port: hp.port, noDelay: true });
      await waitFor(sock, "connect", deadline, "connect", signal);
      let now = performance.now();
      r.connectSeconds = (now - t) / 1000;
      const useTls = m?.tls ?? false;
      if (useTls) {
        t = now;
        const tsock = tls.connect({ socket: sock, ...tlsOptions(m?.tlsConfig, hp.host, ["h2"]) });
        sock = tsock;
        await waitFor(tsock, "secureConnect", deadline, "tls", signal);
        now = performance.now();
        r.tlsSeconds = (now - t) / 1000;
        const facts = handshakeFacts(tsock);
        r.tlsVersion = facts.version;
        r.sslEarliestCertExpiry = BigInt(facts.certExpiry);
        if (tsock.alpnProtocol !== "h2") throw new ProbeFailure("protocol", `TLS server chose ${tsock.alpnProtocol ? `ALPN "${tsock.alpnProtocol}"` : "no ALPN protocol"}, not h2`, Code.UNAVAILABLE);
      }
      // :authority as grpc-go sends it: the target's host (server_name with TLS when set) and port.
      const authHost = (useTls && m?.tlsConfig?.serverName) || hp.host;
      const authority = `${net.isIP(authHost) === 6 ? `[${authHost}]` : authHost}:${hp.port}`;
      t = performance.now();
      const out = await healthCheck(sock, { authority, tls: useTls, service: m?.service ?? "", metadata: m?.metadata ?? [], deadline, signal }, (s) => (session = s));
      r.checkSeconds = (out.statusAt - t) / 1000;
      r.grpcStatusCode = out.grpcStatus;
      r.servingStatus = out.servingStatus;
      if (out.grpcStatus !== Code.OK) throw new ProbeFailure("grpc_status", `grpc-status ${codeText(out.grpcStatus)}${out.grpcMessage ? `: ${out.grpcMessage}` : ""}`, out.grpcStatus);
      if (out.servingStatus !== "SERVING") throw new ProbeFailure("not_serving", `service ${m?.service ? `"${m.service}"` : "(server)"} is ${out.servingStatus}`);
    } catch (e) {
      const f = e instanceof ProbeFailure ? e : new ProbeFailure("protocol", (e as Error).message, Code.INTERNAL);
      r.failedReason = f.reason;
      r.error = f.message;
      if (f.reason !== "not_serving") r.grpcStatusCode = f.code;
    } finally {
      session?.destroy();
      sock?.destroy();
    }
    r.success = r.failedReason === "";
    r.durationSeconds = (performance.now() - start) / 1000;
    return r;
  }

  close(): void {}
}
