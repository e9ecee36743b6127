/**
 * HTTP probe type with blackbox_exporter's / httpstat's phases, measured at socket events of a
 * fresh connection per hop (no keep-alive, so connect and tls are measured every round):
 *
 *   resolve     start -> DNS answer (0 for an IP literal)
 *   connect     DNS answer -> TCP established ("connect" event)
 *   tls         TCP established -> TLS handshake done ("secureConnect"; 0 for http)
 *   processing  request written -> first response byte (first "data" event)
 *   transfer    first response byte -> body complete (Content-Length / chunked / close)
 *
 * Redirects are followed (at most 10) and each phase is summed over the hops. All durations in
 * the result are seconds, differences of performance.now() readings (monotonic in Bun: a
 * wall-clock step does not enter them); only `time` is wall-clock. A probe that times out keeps
 * the phases it completed.
 */
import net from "node:net";
import tls from "node:tls";
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { HttpResultSchema, type HttpModule, type HttpResult, type HttpTarget } from "../../rpc/gen/probermesh/v1/http_pb.ts";
import { HTTP_DEFAULTS } from "./defaults.ts";
import { VERSION } from "../../version.ts";
import { ResolveTimeoutError, resolveHostWithin } from "../resolve.ts";
import { handshakeFacts, tlsOptions } from "../tls.ts";
import type { Prober, ProberStatus } from "../kind.ts";
import { checkResponse, requestHeaders } from "./checks.ts";
import type { FailedReason } from "./failed_reason.ts";
import { HttpProtocolError, ResponseParser, type ResponseHead } from "./response.ts";

/** Redirect hops followed at most (as Go's http.Client and blackbox_exporter). */
export const MAX_REDIRECTS = 10;

class ProbeFailure extends Error {
  constructor(readonly reason: FailedReason, message: string) {
    super(message);
  }
}

/** Phase durations of one probe, seconds, summed over its hops (blackbox_exporter's phase names). */
interface PhaseTimes {
  resolve: number;
  connect: number;
  tls: number;
  processing: number;
  transfer: number;
}

/** What a hop learned besides its phases. */
interface HopOutcome {
  head: ResponseHead;
  body: string;
  bodyBytes: number;
  tls: boolean;
  tlsVersion: string;
  /** Earliest NotAfter of the peer chain, unix seconds; 0 for plain HTTP. */
  certExpiry: number;
}

/**
 * Waits for `ok` on `sock`; rejects on "error", on "close" first, or at the deadline. Settles
 * exactly once and leaves no listener or timer behind.
 */
function waitFor(sock: net.Socket, ok: string, deadline: number, reason: FailedReason): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => settle(new ProbeFailure("timeout", `timed out waiting for ${reason}`)), Math.max(0, deadline - performance.now()));
    const onOk = () => settle();
    const onErr = (e: Error) => settle(new ProbeFailure(reason, e.message));
    const onClose = () => settle(new ProbeFailure(reason, "connection closed"));
    function settle(err?: Error) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.off(ok, onOk).off("error", onErr).off("close", onClose);
      if (err) reject(err);
      else resolve();
    }
    sock.once(ok, onOk).once("error", onErr).once("close", onClose);
  });
}

/**
 * Resolves `host` within what is left of the probe's deadline (`deadline`: performance.now()
 * milliseconds). Any failure is failed_reason "resolve", running out of time included: a resolver
 * that does not answer is the cause, which "timeout" would hide (docs/probes.md "HTTP").
 */
async function resolveWithin(host: string, m: HttpModule | undefined, deadline: number) {
  const left = deadline - performance.now();
  // A redirect hop that starts with no time left ran out in the hops before it, not in DNS.
  if (left <= 0 && !net.isIP(host)) throw new ProbeFailure("timeout", "timed out before resolving");
  try {
    return await resolveHostWithin(host, left, m?.preferredIpProtocol === "ip6" ? "ip6" : "ip4", m?.ipProtocolFallback ?? true);
  } catch (e) {
    const msg = (e as Error).message;
    throw new ProbeFailure("resolve", e instanceof ResolveTimeoutError ? `${msg} (the probe's timeout ran out while resolving)` : msg);
  }
}

/**
 * The HTTP prober. Stateless apart from settings; safe to share across targets. The result a
 * probe() call resolves with is final: no socket event, timer or later probe can change it.
 */
export class HttpPhaseProber implements Prober<"http"> {
  readonly type = "http" as const;

  status(): ProberStatus {
    return { ready: true, message: "HTTP probes over node:net / node:tls (HTTP/1.1, a fresh connection per hop)" };
  }

  async probe(target: HttpTarget, signal?: AbortSignal): Promise<HttpResult> {
    const m = target.module;
    const timeoutMs = m?.timeout ? durationMs(m.timeout) : HTTP_DEFAULTS.timeoutMs;
    const start = performance.now();
    const deadline = start + timeoutMs;
    const r = create(HttpResultSchema, { targetRegion: target.targetRegion, url: target.url, time: timestampFromMs(Date.now()) });
    let url: URL;
    try {
      url = new URL(target.url);
    } catch {
      return Object.assign(r, { failedReason: "http_protocol" satisfies FailedReason, error: `bad URL ${target.url}` });
    }
    // Owned by this call only; copied into the result once, below.
    const phases: PhaseTimes = { resolve: 0, connect: 0, tls: 0, processing: 0, transfer: 0 };
    let method = m?.method || "GET";
    let body = m?.body ?? "";
    try {
      for (let hop = 0; ; hop++) {
        if (signal?.aborted) throw new ProbeFailure("timeout", "aborted");
        const out = await this.hop(url, method, body, m, deadline, phases);
        r.statusCode = out.head.status;
        r.httpVersion = out.head.version;
        r.contentLength = BigInt(out.bodyBytes);
        if (out.tls) r.tlsVersion = out.tlsVersion;
        if (out.certExpiry > 0 && (r.sslEarliestCertExpiry === 0n || BigInt(out.certExpiry) < r.sslEarliestCertExpiry)) r.sslEarliestCertExpiry = BigInt(out.certExpiry);
        const loc = out.head.headers.get("location");
        if (!m?.noFollowRedirects && loc && [301, 302, 303, 307, 308].includes(out.head.status)) {
          if (hop + 1 > MAX_REDIRECTS) throw new ProbeFailure("redirects", `stopped after ${MAX_REDIRECTS} redirects`);
          url = new URL(loc, url);
          if (out.head.status === 303 || ((out.head.status === 301 || out.head.status === 302) && method === "POST")) {
            method = method === "HEAD" ? "HEAD" : "GET";
            body = "";
          }
          r.redirects++;
          continue;
        }
        const failure = checkResponse(out.head, out.body, out.tls, m);
        if (failure) {
          r.failedReason = failure.reason;
          r.error = failure.message;
        }
        break;
      }
    } catch (e) {
      const f = e instanceof ProbeFailure ? e : new ProbeFailure("http_protocol", (e as Error).message);
      r.failedReason = f.reason;
      r.error = f.message;
    }
    r.success = r.failedReason === "";
    r.resolveSeconds = phases.resolve;
    r.connectSeconds = phases.connect;
    r.tlsSeconds = phases.tls;
    r.processingSeconds = phases.processing;
    r.transferSeconds = phases.transfer;
    r.durationSeconds = (performance.now() - start) / 1000;
    return r;
  }

  close(): void {}

  /** One request on a fresh connection; adds its phase durations to `phases` as they complete. */
  private async hop(url: URL, method: string, body: string, m: HttpModule | undefined, deadline: number, phases: PhaseTimes): Promise<HopOutcome> {
    const https = url.protocol === "https:";
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const port = Number(url.port || (https ? 443 : 80));
    const resolved = await resolveWithin(host, m, deadline);
    phases.resolve += resolved.seconds;
    let t = performance.now();
    let sock: net.Socket = net.connect({ host: resolved.ip, port, noDelay: true });
    try {
      await waitFor(sock, "connect", deadline, "connect");
      let now = performance.now();
      phases.connect += (now - t) / 1000;
      let tlsVersion = "";
      let certExpiry = 0;
      if (https) {
        t = now;
        const tsock = tls.connect({ socket: sock, ...tlsOptions(m?.tlsConfig, host, ["http/1.1"], m?.insecureSkipVerify) });
        sock = tsock;
        await waitFor(tsock, "secureConnect", deadline, "tls");
        now = performance.now();
        phases.tls += (now - t) / 1000;
        ({ version: tlsVersion, certExpiry } = handshakeFacts(tsock));
      }
      const out = await exchange(sock, url, method, body, m, deadline, phases);
      return { ...out, tls: https, tlsVersion, certExpiry };
    } finally {
      sock.destroy();
    }
  }
}

/**
 * Writes the request and reads the response: processing (request written -> first byte) and
 * transfer (first byte -> body complete, or -> failure once the body had started). Settles exactly
 * once, whichever of body-complete, "end", "close", "error" or the deadline comes first, and
 * removes every listener and the timer when it does: a FIN arriving with the last chunk must not
 * finish the exchange a second time.
 */
function exchange(sock: net.Socket, url: URL, method: string, body: string, m: HttpModule | undefined, deadline: number, phases: PhaseTimes): Promise<Omit<HopOutcome, "tls" | "tlsVersion" | "certExpiry">> {
  const headers = requestHeaders(url, m, `ProberMesh/${VERSION}`);
  if (body || ["POST", "PUT", "PATCH"].includes(method)) headers["Content-Length"] = String(Buffer.byteLength(body));
  const head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`;
  const parser = new ResponseParser(method === "HEAD");
  const bodyLimit = Number(m?.bodySizeLimit ?? 0n);
  return new Promise((resolve, reject) => {
    let firstByteAt = 0;
    let settled = false;
    const sentAt = performance.now();
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      const at = performance.now();
      clearTimeout(timer);
      sock.off("data", onData).off("end", onEnd).off("close", onEnd).off("error", onError);
      if (firstByteAt) phases.transfer += (at - firstByteAt) / 1000;
      if (err) reject(err);
      else resolve({ head: parser.head!, body: Buffer.concat(parser.body).toString("utf8"), bodyBytes: parser.bodyBytes });
    };
    const timer = setTimeout(() => settle(new ProbeFailure("timeout", firstByteAt ? "timed out reading the body" : "timed out waiting for the first byte")), Math.max(0, deadline - sentAt));
    const onData = (d: Buffer) => {
      if (!firstByteAt) {
        firstByteAt = performance.now();
        phases.processing += (firstByteAt - sentAt) / 1000;
      }
      try {
        parser.push(d);
      } catch (e) {
        return settle(new ProbeFailure("http_protocol", (e as HttpProtocolError).message));
      }
      if (bodyLimit > 0 && parser.bodyBytes > bodyLimit) return settle(new ProbeFailure("body_size_limit", `body larger than body_size_limit (${bodyLimit} bytes)`));
      if (parser.done) settle();
    };
    const onEnd = () => settle(parser.end() ? undefined : new ProbeFailure("http_protocol", "connection closed before the response was complete"));
    const onError = (e: Error) => settle(new ProbeFailure("http_protocol", e.message));
    sock.on("data", onData).once("end", onEnd).once("close", onEnd).once("error", onError);
    sock.write(body ? head + body : head);
  });
}
