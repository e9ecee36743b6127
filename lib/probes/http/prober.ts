/**
 * HTTP probe type with blackbox_exporter's / httpstat's phases, measured at socket events of a
 * fresh connection per hop (no keep-alive, so connect and tls are measured every round):
 *
 *   resolve     start -> DNS answer (0 for an IP literal; the proxy's name too, conn.ts)
 *   connect     DNS answer -> TCP established (to the proxy, and through it: conn.ts)
 *   tls         TCP established -> TLS handshake done (0 for http)
 *   processing  request sent -> first response byte (HTTP/1.1) or response headers (HTTP/2)
 *   transfer    first response byte -> body complete and decoded
 *
 * Redirects are followed (at most 10, follow_redirects) and each phase is summed over the hops;
 * cookies set on the way are sent on (cookies.ts), credentials stay with the first host
 * (headers.ts). All durations in the result are seconds, differences of performance.now()
 * readings (monotonic in Bun: a wall-clock step does not enter them); only `time` is wall-clock.
 * A probe that times out keeps the phases it completed. An OAuth2 token request (oauth2.ts) is
 * in no phase, only in duration_seconds.
 */
import type net from "node:net";
import { clone, create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { HttpResultSchema, type HttpModule, type HttpResult, type HttpTarget } from "../../rpc/gen/probermesh/v1/http_pb.ts";
import { TlsConfigSchema } from "../../rpc/gen/probermesh/v1/tls_pb.ts";
import { VERSION } from "../../version.ts";
import type { Prober, ProberStatus } from "../kind.ts";
import { BodySink } from "./body.ts";
import { checkResponse, checksBody, type CheckedBody } from "./checks.ts";
import { openConnection, type ConnectPhases } from "./conn.ts";
import { CookieJar } from "./cookies.ts";
import { HTTP_DEFAULTS, MAX_REDIRECTS } from "./defaults.ts";
import type { FailedReason } from "./failed_reason.ts";
import { ProbeFailure } from "./failure.ts";
import { exchangeH1, type ExchangePhases } from "./h1.ts";
import { exchangeH2 } from "./h2.ts";
import { hopHeaders, isDomainOrSubdomain } from "./headers.ts";
import { oauth2Token } from "./oauth2.ts";
import type { ResponseHead } from "./response.ts";

export { MAX_REDIRECTS } from "./defaults.ts";

/** Phase durations of one probe, seconds, summed over its hops (blackbox_exporter's phase names). */
type PhaseTimes = ConnectPhases & ExchangePhases;

/** What a hop learned besides its phases. */
interface HopOutcome {
  head: ResponseHead;
  body: CheckedBody;
  wireBytes: number;
  decodedBytes: number;
  tls: boolean;
  tlsVersion: string;
  /** Earliest NotAfter of the peer chain, unix seconds; 0 for plain HTTP. */
  certExpiry: number;
}

/** Where a probe stands between hops. */
interface ProbeState {
  m: HttpModule | undefined;
  deadline: number;
  signal: AbortSignal | undefined;
  phases: PhaseTimes;
  jar: CookieJar;
  /** The first URL's host:port and host name. */
  firstHost: string;
  firstName: string;
  /** The module's Host header, while it applies (first hop, relative redirects). */
  customHost: string | undefined;
  /** The probe left the first host: credentials are no longer sent (sticky, as Go). */
  strip: boolean;
  userAgent: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * The HTTP prober. Stateless apart from settings (and the OAuth2 token cache); safe to share
 * across targets. The result a probe() call resolves with is final: no socket event, timer or
 * later probe can change it.
 */
export class HttpPhaseProber implements Prober<"http"> {
  readonly type = "http" as const;

  status(): ProberStatus {
    return { ready: true, message: "HTTP probes over node:net / node:tls / node:http2 (HTTP/1.1, HTTP/2 by ALPN; a fresh connection per hop; proxies: HTTP, CONNECT, SOCKS5)" };
  }

  async probe(target: HttpTarget, signal?: AbortSignal): Promise<HttpResult> {
    const m = target.module;
    const timeoutMs = m?.timeout ? durationMs(m.timeout) : HTTP_DEFAULTS.timeoutMs;
    const start = performance.now();
    const r = create(HttpResultSchema, { targetRegion: target.targetRegion, url: target.url, time: timestampFromMs(Date.now()) });
    let url: URL;
    try {
      url = new URL(target.url);
    } catch {
      return Object.assign(r, { failedReason: "http_protocol" satisfies FailedReason, error: `bad URL ${target.url}` });
    }
    const header = (name: string) => Object.entries(m?.headers ?? {}).find(([k]) => k.toLowerCase() === name)?.[1];
    // Owned by this call only; copied into the result once, below.
    const s: ProbeState = {
      m, deadline: start + timeoutMs, signal, jar: new CookieJar(),
      phases: { resolve: 0, connect: 0, tls: 0, processing: 0, transfer: 0 },
      firstHost: url.host, firstName: url.hostname, customHost: header("host"), strip: false,
      userAgent: header("user-agent") ?? `ProberMesh/${VERSION}`,
    };
    let method = m?.method || "GET";
    let body = m?.bodyBytes.length ? Buffer.from(m.bodyBytes) : Buffer.from(m?.body ?? "");
    try {
      for (let hop = 0; ; hop++) {
        if (signal?.aborted) throw new ProbeFailure("timeout", "aborted");
        // Go strips credentials once a hop is neither the first host nor a subdomain of it, for the rest of the chain.
        if (!s.strip && !isDomainOrSubdomain(url.hostname, s.firstName)) s.strip = true;
        const out = await this.hop(url, method, body, s);
        r.statusCode = out.head.status;
        r.httpVersion = out.head.version;
        r.contentLength = BigInt(out.wireBytes);
        r.uncompressedBodyLength = BigInt(out.decodedBytes);
        if (out.tls) r.tlsVersion = out.tlsVersion;
        if (out.certExpiry > 0 && (r.sslEarliestCertExpiry === 0n || BigInt(out.certExpiry) < r.sslEarliestCertExpiry)) r.sslEarliestCertExpiry = BigInt(out.certExpiry);
        const loc = out.head.headers.get("location")?.[0];
        if (!m?.noFollowRedirects && loc && REDIRECTS.has(out.head.status)) {
          if (hop + 1 > MAX_REDIRECTS) throw new ProbeFailure("redirects", `stopped after ${MAX_REDIRECTS} redirects`);
          let next: URL;
          try {
            next = new URL(loc, url);
          } catch {
            throw new ProbeFailure("http_protocol", `failed to parse Location header ${JSON.stringify(loc)}`);
          }
          if (next.protocol !== "http:" && next.protocol !== "https:") throw new ProbeFailure("http_protocol", `redirect to unsupported protocol scheme ${next.protocol}`);
          // Go keeps a custom Host only through a relative redirect.
          if (/^[a-zA-Z][a-zA-Z0-9+.-]*:|^\/\//.test(loc)) s.customHost = undefined;
          if (out.head.status <= 303 && method !== "GET" && method !== "HEAD") {
            method = "GET";
            body = Buffer.alloc(0);
          } else if (out.head.status <= 303) body = Buffer.alloc(0);
          url = next;
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
    r.resolveSeconds = s.phases.resolve;
    r.connectSeconds = s.phases.connect;
    r.tlsSeconds = s.phases.tls;
    r.processingSeconds = s.phases.processing;
    r.transferSeconds = s.phases.transfer;
    r.durationSeconds = (performance.now() - start) / 1000;
    return r;
  }

  close(): void {}

  /** One request on a fresh connection; adds its phase durations to the state's as they complete. */
  private async hop(url: URL, method: string, body: Buffer, s: ProbeState): Promise<HopOutcome> {
    const { m, deadline, signal } = s;
    const sockets: net.Socket[] = [];
    let sink: BodySink | undefined;
    try {
      const token = m?.oauth2 && !s.strip ? await oauth2Token(m.oauth2, s.userAgent, deadline, signal) : undefined;
      // blackbox's client names the first host (tls_config.server_name, else the Host header, else the URL's)
      // in TLS; a hop to another host:port uses its own name and no server_name.
      const firstHost = url.host === s.firstHost;
      const tlsConfig = firstHost || !m?.tlsConfig ? m?.tlsConfig : { ...clone(TlsConfigSchema, m.tlsConfig), serverName: "" };
      const tlsHost = (firstHost && s.customHost ? s.customHost.replace(/:\d+$/, "") : url.hostname).replace(/^\[|\]$/g, "");
      const conn = await openConnection(url, {
        tlsHost, proxy: m?.proxy, tlsConfig, insecure: m?.insecureSkipVerify ?? false,
        alpn: m?.enableHttp2 ? ["h2", "http/1.1"] : ["http/1.1"], skipResolveWithProxy: m?.skipResolvePhaseWithProxy ?? false,
        preferIp6: m?.preferredIpProtocol === "ip6", fallback: m?.ipProtocolFallback ?? true, deadline, signal,
      }, s.phases, (x) => sockets.push(x));
      const { authority, headers } = hopHeaders(m, { url, host: s.customHost, strip: s.strip, oauth2: token, cookies: s.jar.header(url), proxyAuthorization: conn.forward?.proxyAuthorization ?? "", userAgent: s.userAgent });
      const path = `${url.pathname || "/"}${url.search}`;
      // Through a forward proxy: absolute-form naming the address the proxy is to use (the resolved IP, or the name when not resolved).
      const fwd = conn.forward ? `${url.protocol}//${conn.forward.host.includes(":") ? `[${conn.forward.host}]` : conn.forward.host}${url.port ? `:${url.port}` : ""}${path}` : path;
      sink = new BodySink({ compression: m?.compression ?? "", limit: Number(m?.bodySizeLimit ?? 0n), keep: checksBody(m) });
      const req = { method, target: fwd, authority, scheme: url.protocol.slice(0, -1), headers, body };
      const head = conn.alpn === "h2" ? await exchangeH2(conn.sock as import("node:tls").TLSSocket, req, sink, deadline, s.phases, signal) : await exchangeH1(conn.sock, req, sink, deadline, s.phases, signal);
      s.jar.store(url, head.headers.get("set-cookie") ?? []);
      return { head, body: { bytes: sink.bytes(), truncated: sink.truncated }, wireBytes: sink.wireBytes, decodedBytes: sink.decodedBytes, tls: conn.tls, tlsVersion: conn.tlsVersion, certExpiry: conn.certExpiry };
    } finally {
      sink?.destroy();
      for (const x of sockets) x.destroy();
    }
  }
}
