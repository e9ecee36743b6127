/**
 * A hop's connection, phase by phase (blackbox_exporter's / httpstat's names):
 *
 *   resolve  the target's name (unless skip_resolve_phase_with_proxy and a proxy is configured),
 *            and the proxy's name when it is one
 *   connect  TCP to the target, or to the proxy and through it: TLS to an https:// proxy, the
 *            CONNECT tunnel (https targets) or the SOCKS5 handshake
 *   tls      the target's TLS handshake (over the tunnel through a proxy); ALPN ["h2","http/1.1"]
 *            with enable_http2, ["http/1.1"] without
 *
 * Every socket opened is handed to `own` at once, so that the caller destroys it whatever happens.
 */
import net from "node:net";
import tls from "node:tls";
import { clone } from "@bufbuild/protobuf";
import type { HttpModule, HttpProxy } from "../../rpc/gen/probermesh/v1/http_pb.ts";
import { TlsConfigSchema, type TlsConfig } from "../../rpc/gen/probermesh/v1/tls_pb.ts";
import { ResolveTimeoutError, resolveHostWithin } from "../resolve.ts";
import { handshakeFacts, tlsOptions } from "../tls.ts";
import type { FailedReason } from "./failed_reason.ts";
import { ProbeFailure } from "./failure.ts";
import { connectTunnel, proxyAuthorization, proxyFor, socks5Tunnel } from "./proxy.ts";
import { waitForSocket } from "../socket_wait.ts";

/** Resolve, connect and tls durations, seconds, summed over a probe's hops. */
export interface ConnectPhases {
  resolve: number;
  connect: number;
  tls: number;
}

/** What a hop's request goes over. */
export interface Connection {
  /** Ready for HTTP: the TLS socket for https targets. */
  sock: net.Socket;
  tls: boolean;
  tlsVersion: string;
  /** Earliest NotAfter of the target's chain, unix seconds; 0 without TLS. */
  certExpiry: number;
  /** The ALPN protocol the target chose ("h2", "http/1.1", "" for none). */
  alpn: string;
  /** An http target through an http(s) proxy: the request goes to the proxy in absolute-form, naming this host. */
  forward?: { host: string; proxyAuthorization: string };
}

/** Where and how a hop connects. */
export interface ConnectOptions {
  /** Name checked against the target's certificate and sent as SNI unless tls_config.server_name: the Host header on the first host, else the URL's host. */
  tlsHost: string;
  /** Proxy settings (the module's or oauth2's). */
  proxy: HttpProxy | undefined;
  tlsConfig: TlsConfig | undefined;
  insecure: boolean;
  alpn: string[];
  skipResolveWithProxy: boolean;
  preferIp6: boolean;
  fallback: boolean;
  deadline: number;
  signal?: AbortSignal;
}

/** Waits for `ok` on `sock` (lib/probes/socket_wait.ts) with HTTP's failures: the phase's reason, "timeout" at the deadline or on abort. */
export function waitFor(sock: net.Socket, ok: string, deadline: number, reason: FailedReason, signal?: AbortSignal): Promise<void> {
  return waitForSocket(sock, ok, deadline, (outcome, e) =>
    outcome === "timeout" ? new ProbeFailure("timeout", `timed out waiting for ${reason}`)
    : outcome === "abort" ? new ProbeFailure("timeout", "aborted")
    : new ProbeFailure(reason, outcome === "error" ? e!.message : "connection closed"), signal);
}

/**
 * Resolves `host` within what is left of the deadline (performance.now() ms). Any failure is
 * failed_reason "resolve", running out of time included: a resolver that does not answer is the
 * cause, which "timeout" would hide.
 */
async function resolveWithin(host: string, o: ConnectOptions): Promise<{ ip: string; seconds: number }> {
  const left = o.deadline - performance.now();
  // A redirect hop that starts with no time left ran out in the hops before it, not in DNS.
  if (left <= 0 && !net.isIP(host)) throw new ProbeFailure("timeout", "timed out before resolving");
  try {
    return await resolveHostWithin(host, left, o.preferIp6 ? "ip6" : "ip4", o.fallback);
  } catch (e) {
    const msg = (e as Error).message;
    throw new ProbeFailure("resolve", e instanceof ResolveTimeoutError ? `${msg} (the probe's timeout ran out while resolving)` : msg);
  }
}

const bracket = (h: string) => (net.isIP(h) === 6 ? `[${h}]` : h);
const bare = (h: string) => h.replace(/^\[|\]$/g, "");

/** Opens the hop's connection to `url` as described above; adds each phase to `phases` as it completes. */
export async function openConnection(url: URL, o: ConnectOptions, phases: ConnectPhases, own: (s: net.Socket) => void): Promise<Connection> {
  const https = url.protocol === "https:";
  const host = bare(url.hostname);
  const port = Number(url.port || (https ? 443 : 80));
  const proxy = proxyFor(url, o.proxy);
  const proxyConfigured = !!o.proxy && (o.proxy.proxyUrl !== "" || o.proxy.proxyFromEnvironment);
  // blackbox resolves the target even through a proxy (the proxy is then asked for the address), unless skip_resolve_phase_with_proxy.
  let dialHost = host;
  if (!(proxyConfigured && o.skipResolveWithProxy && proxy)) {
    const r = await resolveWithin(host, o);
    phases.resolve += r.seconds;
    dialHost = r.ip;
  }
  let sock: net.Socket;
  let forward: Connection["forward"];
  if (proxy) {
    const ph = bare(proxy.hostname);
    const r = await resolveWithin(ph, o);
    phases.resolve += r.seconds;
    const t = performance.now();
    const socks = proxy.protocol === "socks5:" || proxy.protocol === "socks5h:";
    sock = net.connect({ host: r.ip, port: Number(proxy.port || (proxy.protocol === "https:" ? 443 : socks ? 1080 : 80)), noDelay: true });
    own(sock);
    await waitFor(sock, "connect", o.deadline, "connect", o.signal);
    if (proxy.protocol === "https:") {
      // Go dials an https proxy with the module's TLS settings, its server name the proxy's.
      const tc = o.tlsConfig ? { ...clone(TlsConfigSchema, o.tlsConfig), serverName: "" } : undefined;
      const ts = tls.connect({ socket: sock, ...tlsOptions(tc, ph, ["http/1.1"], o.insecure) });
      own(ts);
      await waitFor(ts, "secureConnect", o.deadline, "connect", o.signal);
      sock = ts;
    }
    if (socks) await socks5Tunnel(sock, dialHost, port, proxy, o.deadline, o.signal);
    else if (https) {
      const headers: [string, string][] = Object.entries(o.proxy?.proxyConnectHeader ?? {}).flatMap(([k, v]) => [...v.values, ...v.secrets].map((x): [string, string] => [k, x]));
      const auth = proxyAuthorization(proxy);
      await connectTunnel(sock, `${bracket(dialHost)}:${port}`, auth ? [...headers.filter(([k]) => k.toLowerCase() !== "proxy-authorization"), ["Proxy-Authorization", auth]] : headers, o.deadline, o.signal);
    } else forward = { host: dialHost, proxyAuthorization: proxyAuthorization(proxy) };
    phases.connect += (performance.now() - t) / 1000;
  } else {
    const t = performance.now();
    sock = net.connect({ host: dialHost, port, noDelay: true });
    own(sock);
    await waitFor(sock, "connect", o.deadline, "connect", o.signal);
    phases.connect += (performance.now() - t) / 1000;
  }
  if (!https) return { sock, tls: false, tlsVersion: "", certExpiry: 0, alpn: "", forward };
  const t = performance.now();
  const ts = tls.connect({ socket: sock, ...tlsOptions(o.tlsConfig, o.tlsHost, o.alpn, o.insecure) });
  own(ts);
  await waitFor(ts, "secureConnect", o.deadline, "tls", o.signal);
  phases.tls += (performance.now() - t) / 1000;
  const facts = handshakeFacts(ts);
  return { sock: ts, tls: true, tlsVersion: facts.version, certExpiry: facts.certExpiry, alpn: ts.alpnProtocol || "", forward };
}
