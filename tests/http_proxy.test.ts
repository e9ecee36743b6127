/**
 * The HTTP probe through proxies (tests/helpers/proxy.ts, which connects only to 127.0.0.1):
 * proxy_url for plain http targets (absolute-form) and https targets (CONNECT, TLS over the
 * tunnel), proxy credentials, proxy_connect_header, skip_resolve_phase_with_proxy, no_proxy and
 * Go's loopback rule, proxy_from_environment, an https:// proxy, SOCKS5, and the failures a proxy
 * can cause. Names used as targets are "vm" and "localhost" (in /etc/hosts) or names nobody
 * resolves (app.test) given to the proxy unresolved: no packet leaves the machine.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { parseNoProxy, proxyFor, useProxy } from "../lib/probes/http/proxy.ts";
import { makeCerts, type TestCerts } from "./helpers/certs.ts";
import { probeWithKeys, reasonOf, startTestServers, type TestServers } from "./helpers/http_servers.ts";
import { startProxy, type TestProxy } from "./helpers/proxy.ts";

let srv: TestServers;
let open: TestProxy; // no credentials asked, SOCKS5 too
let locked: TestProxy; // asks user:pw (Basic / SOCKS5)
let refusing: TestProxy; // refuses CONNECT with 403
let tlsProxy: TestProxy; // an https:// proxy
let certs: TestCerts;
beforeAll(async () => {
  srv = await startTestServers();
  certs = await makeCerts();
  open = await startProxy({ socks: true });
  locked = await startProxy({ auth: "user:pw", socks: true });
  refusing = await startProxy({ refuseConnect: 403 });
  tlsProxy = await startProxy({ tls: { key: readFileSync(certs.serverKey, "utf8"), cert: readFileSync(certs.serverCert, "utf8") } });
});
afterAll(() => {
  srv.close();
  for (const p of [open, locked, refusing, tlsProxy]) p.close();
});

const ca = () => ({ ca_file: srv.caFile });
const proxyOf = (p: TestProxy, auth = "") => `http://${auth}127.0.0.1:${p.port}`;
/** The log entries a probe added. */
async function logged<T>(p: TestProxy, run: () => Promise<T>): Promise<[T, TestProxy["log"]]> {
  const n = p.log.length;
  const out = await run();
  return [out, p.log.slice(n)];
}

describe("proxy_url", () => {
  test("a plain http target goes to the proxy in absolute-form naming the resolved address (blackbox's meaning), Host kept", async () => {
    const [r, log] = await logged(open, () => probeWithKeys(`http://localhost:${srv.httpPort}/echo`, { proxy_url: proxyOf(open), fail_if_body_json_not_matches_cel: `body.headers.host == 'localhost:${srv.httpPort}'` }));
    expect(reasonOf(r)).toBe("ok");
    expect(log.map((e) => [e.kind, e.target])).toEqual([["forward", `http://127.0.0.1:${srv.httpPort}/echo`]]);
    expect(r.resolveSeconds).toBeGreaterThan(0);
    expect(r.connectSeconds).toBeGreaterThan(0);
  });

  test("an https target goes through CONNECT; TLS is over the tunnel, checked against the target's name", async () => {
    const [r, log] = await logged(open, () => probeWithKeys(`https://localhost:${srv.httpsPort}/ok`, { proxy_url: proxyOf(open), tls_config: ca() }));
    expect([reasonOf(r), r.tlsVersion !== ""]).toEqual(["ok", true]);
    expect(log.map((e) => [e.kind, e.target])).toEqual([["connect", `127.0.0.1:${srv.httpsPort}`]]);
    expect(r.tlsSeconds).toBeGreaterThan(0);
  });

  test("skip_resolve_phase_with_proxy: no resolve phase, the proxy gets the name (even one only it could resolve)", async () => {
    const [r, log] = await logged(open, () => probeWithKeys(`http://app.test:${srv.httpPort}/ok`, { proxy_url: proxyOf(open), skip_resolve_phase_with_proxy: true }));
    expect([reasonOf(r), r.resolveSeconds]).toEqual(["ok", 0]);
    expect(log.map((e) => e.target)).toEqual([`http://app.test:${srv.httpPort}/ok`]);
    const [s, slog] = await logged(open, () => probeWithKeys(`https://probe.test:${srv.httpsPort}/ok`, { proxy_url: proxyOf(open), skip_resolve_phase_with_proxy: true, tls_config: ca() }));
    expect(reasonOf(s)).toBe("ok");
    expect(slog.map((e) => [e.kind, e.target])).toEqual([["connect", `probe.test:${srv.httpsPort}`]]);
  });

  test("the proxy URL's user:password is Proxy-Authorization, for forwarded requests and CONNECT; without it the proxy's 407 decides", async () => {
    const basic = `Basic ${Buffer.from("user:pw").toString("base64")}`;
    const [r, log] = await logged(locked, () => probeWithKeys(`http://127.0.0.1:${srv.httpPort}/echo`, { proxy_url: proxyOf(locked, "user:pw@"), fail_if_body_json_not_matches_cel: "!('proxy-authorization' in body.headers)" }));
    expect(reasonOf(r)).toBe("ok");
    expect(log[0]!.headers["proxy-authorization"]).toEqual([basic]);
    const [t, tlog] = await logged(locked, () => probeWithKeys(`https://localhost:${srv.httpsPort}/ok`, { proxy_url: proxyOf(locked, "user:pw@"), tls_config: ca() }));
    expect(reasonOf(t)).toBe("ok");
    expect(tlog[0]!.headers["proxy-authorization"]).toEqual([basic]);
    const plain = await probeWithKeys(`http://127.0.0.1:${srv.httpPort}/ok`, { proxy_url: proxyOf(locked) });
    expect([reasonOf(plain), plain.statusCode]).toEqual(["status_code", 407]);
    const tunnel = await probeWithKeys(`https://localhost:${srv.httpsPort}/ok`, { proxy_url: proxyOf(locked), tls_config: ca() });
    expect([reasonOf(tunnel), tunnel.error]).toEqual(["proxy", `proxy refused CONNECT 127.0.0.1:${srv.httpsPort}: 407 Proxy Authentication Required`]);
  });

  test("proxy_connect_header goes with CONNECT only", async () => {
    const keys = { proxy_url: proxyOf(open), proxy_connect_header: { "X-Tunnel": ["t1", "t2"] }, tls_config: ca() };
    const [, log] = await logged(open, () => probeWithKeys(`https://localhost:${srv.httpsPort}/ok`, keys));
    expect(log[0]!.headers["x-tunnel"]).toEqual(["t1", "t2"]);
    const [, flog] = await logged(open, () => probeWithKeys(`http://127.0.0.1:${srv.httpPort}/ok`, keys));
    expect(flog[0]!.headers["x-tunnel"]).toBeUndefined();
  });

  test("failures: CONNECT refused is proxy, a proxy nobody listens on is connect", async () => {
    const r = await probeWithKeys(`https://localhost:${srv.httpsPort}/ok`, { proxy_url: proxyOf(refusing), tls_config: ca() });
    expect([reasonOf(r), r.error]).toEqual(["proxy", `proxy refused CONNECT 127.0.0.1:${srv.httpsPort}: 403 Refused`]);
    expect(reasonOf(await probeWithKeys(`http://127.0.0.1:${srv.httpPort}/ok`, { proxy_url: "http://127.0.0.1:1" }))).toBe("connect");
  });
});

describe("which requests take the proxy", () => {
  test("no_proxy (Go's NO_PROXY syntax), and Go's rule that localhost and loopback addresses never take a proxy once no_proxy is set", async () => {
    const base = { proxy_url: proxyOf(open), skip_resolve_phase_with_proxy: true };
    const [direct, dlog] = await logged(open, () => probeWithKeys(`http://vm:${srv.httpPort}/ok`, { ...base, no_proxy: "other.test, vm" }));
    expect([reasonOf(direct), dlog.length, direct.resolveSeconds > 0]).toEqual(["ok", 0, true]);
    const [proxied, plog] = await logged(open, () => probeWithKeys(`http://vm:${srv.httpPort}/ok`, { ...base, no_proxy: "other.test" }));
    expect([reasonOf(proxied), plog.map((e) => e.target)]).toEqual(["ok", [`http://vm:${srv.httpPort}/ok`]]);
    const [loop, llog] = await logged(open, () => probeWithKeys(`http://127.0.0.1:${srv.httpPort}/ok`, { proxy_url: proxyOf(open), no_proxy: "other.test" }));
    expect([reasonOf(loop), llog.length]).toEqual(["ok", 0]);
    const [always, alog] = await logged(open, () => probeWithKeys(`http://127.0.0.1:${srv.httpPort}/ok`, { proxy_url: proxyOf(open) }));
    expect([reasonOf(always), alog.length]).toEqual(["ok", 1]);
  });

  test("no_proxy matching: names, .domains, *.domains, ports, IPs, CIDRs, *", () => {
    const use = (host: string, port: string, list: string) => useProxy(host, port, parseNoProxy(list));
    expect(use("a.example.com", "80", "example.com")).toBe(false);
    expect(use("example.com", "80", "example.com")).toBe(false);
    expect(use("example.com", "80", ".example.com")).toBe(true);
    expect(use("b.example.com", "80", "*.example.com")).toBe(false);
    expect(use("badexample.com", "80", "example.com")).toBe(true);
    expect(use("example.com", "8080", "example.com:80")).toBe(true);
    expect(use("10.1.2.3", "80", "10.0.0.0/8")).toBe(false);
    expect(use("11.1.2.3", "80", "10.0.0.0/8")).toBe(true);
    expect(use("2001:db8::5", "443", "2001:db8::/32")).toBe(false);
    expect(use("10.1.2.3", "443", "10.1.2.3:80")).toBe(true);
    expect(use("[2001:db8::1]", "80", "[2001:db8::1]:80")).toBe(false);
    expect(use("anything", "80", "*")).toBe(false);
    expect(use("localhost", "80", "")).toBe(false);
    expect(use("127.9.9.9", "80", "")).toBe(false);
    expect(use("::1", "80", "")).toBe(false);
  });

  test("proxy_from_environment: HTTP_PROXY / HTTPS_PROXY by the target's scheme, NO_PROXY, upper case first", async () => {
    const p = { $typeName: "probermesh.v1.HttpProxy" as const, proxyUrl: "", noProxy: "", proxyFromEnvironment: true, proxyConnectHeader: {} };
    const env = { HTTP_PROXY: "proxy.test:3128", http_proxy: "http://lower.test:1", HTTPS_PROXY: "https://secure.test:443", NO_PROXY: "skip.test" };
    expect(proxyFor(new URL("http://a.test/"), p, env)?.href).toBe("http://proxy.test:3128/");
    expect(proxyFor(new URL("https://a.test/"), p, env)?.href).toBe("https://secure.test/");
    expect(proxyFor(new URL("http://skip.test/"), p, env)).toBeNull();
    expect(proxyFor(new URL("https://a.test/"), p, { http_proxy: "http://lower.test:1" })).toBeNull();
    const saved = { ...process.env };
    try {
      process.env.HTTP_PROXY = proxyOf(open);
      const [r, log] = await logged(open, () => probeWithKeys(`http://vm:${srv.httpPort}/ok`, { proxy_from_environment: true, skip_resolve_phase_with_proxy: true }));
      expect([reasonOf(r), log.map((e) => e.target)]).toEqual(["ok", [`http://vm:${srv.httpPort}/ok`]]);
      process.env.NO_PROXY = "vm";
      const [d, dlog] = await logged(open, () => probeWithKeys(`http://vm:${srv.httpPort}/ok`, { proxy_from_environment: true, skip_resolve_phase_with_proxy: true }));
      expect([reasonOf(d), dlog.length]).toEqual(["ok", 0]);
    } finally {
      for (const k of ["HTTP_PROXY", "NO_PROXY"]) if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
});

describe("other proxies", () => {
  test("an https:// proxy: TLS to the proxy with the module's tls_config, then forward or CONNECT (TLS inside TLS)", async () => {
    const proxy = `https://localhost:${tlsProxy.port}`;
    const [r, log] = await logged(tlsProxy, () => probeWithKeys(`http://127.0.0.1:${srv.httpPort}/ok`, { proxy_url: proxy, tls_config: { ca_file: certs.caFile } }));
    expect([reasonOf(r), log.map((e) => e.kind)]).toEqual(["ok", ["forward"]]);
    const bundle = `${certs.dir}/both.pem`;
    await Bun.write(bundle, readFileSync(certs.caFile, "utf8") + readFileSync(srv.caFile, "utf8"));
    const [t, tlog] = await logged(tlsProxy, () => probeWithKeys(`https://localhost:${srv.httpsPort}/ok`, { proxy_url: proxy, tls_config: { ca_file: bundle } }));
    expect([reasonOf(t), tlog.map((e) => e.kind)]).toEqual(["ok", ["connect"]]);
    expect(reasonOf(await probeWithKeys(`http://127.0.0.1:${srv.httpPort}/ok`, { proxy_url: proxy, tls_config: ca() }))).toBe("connect"); // proxy's certificate untrusted
  });

  test("SOCKS5, with and without user:password; an IP as an address, a name unresolved with skip_resolve_phase_with_proxy", async () => {
    const [r, log] = await logged(open, () => probeWithKeys(`http://127.0.0.1:${srv.httpPort}/ok`, { proxy_url: `socks5://127.0.0.1:${open.socksPort}` }));
    expect([reasonOf(r), log.map((e) => [e.kind, e.target])]).toEqual(["ok", [["socks5", `127.0.0.1:${srv.httpPort}`]]]);
    const [s, slog] = await logged(locked, () => probeWithKeys(`https://probe.test:${srv.httpsPort}/ok`, { proxy_url: `socks5://user:pw@127.0.0.1:${locked.socksPort}`, skip_resolve_phase_with_proxy: true, tls_config: ca() }));
    expect([reasonOf(s), slog.map((e) => [e.target, e.socksAuth])]).toEqual(["ok", [[`probe.test:${srv.httpsPort}`, "user:pw"]]]);
    const denied = await probeWithKeys(`http://127.0.0.1:${srv.httpPort}/ok`, { proxy_url: `socks5://user:wrong@127.0.0.1:${locked.socksPort}` });
    expect([reasonOf(denied), denied.error]).toEqual(["proxy", "SOCKS5 proxy refused the user name and password"]);
  });
});
