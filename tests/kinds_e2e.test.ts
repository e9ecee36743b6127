/**
 * Every probe kind through the compiled binaries, side by side with the real blackbox_exporter
 * (Debian's prometheus-blackbox-exporter) on the same `modules:` and the same local targets:
 *
 *   - one probe file holds blackbox modules of every kind and blocks that use them; blackbox
 *     gets the very same file (it reads `modules:` and ignores nothing it knows);
 *   - a server and one agent run it; the verdict of each (module, target) read from the server
 *     (`/api/v1/targets`, `/api/v1/mesh`) equals blackbox's `probe_success` for it, and equals the
 *     verdict written here (so both being wrong the same way fails too);
 *   - `/metrics` has each kind's family with the labels the rules and dashboards read;
 *   - a fault: a target process frozen with SIGSTOP turns into timeouts, and SIGCONT heals it.
 *
 * Targets are loopback servers started here (HTTP, TCP with and without TLS, DNS, gRPC health).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { makeCerts } from "./helpers/certs.ts";
import { startDnsServer, type DnsTestServer } from "./helpers/dns_server.ts";
import { ServingStatus, startHealthServer, type RunningServer } from "./helpers/grpc_server.ts";
import { startTestServers, type TestServers } from "./helpers/http_servers.ts";
import { AGENT_BIN, IS_ROOT, SERVER_BIN, freePort, killAll, skipReason, start, waitFor, type Proc } from "./helpers/procs.ts";
import { banner, closedPort, startTcpServer, type TcpTestServer } from "./helpers/tcp_servers.ts";

const blackbox = Bun.which("prometheus-blackbox-exporter");
const ok = IS_ROOT && blackbox !== null;
if (!ok) skipReason(`kinds_e2e.test.ts needs root (ICMP for both probers) and prometheus-blackbox-exporter (apt-get install prometheus-blackbox-exporter); root=${IS_ROOT} blackbox=${blackbox}`);

/** One (module, target) with the verdict both probers must reach. */
interface Case {
  kind: "icmp" | "http" | "tcp" | "dns" | "grpc";
  /** Target region ("t" unless one target is probed by two modules: a target is listed once per region and kind). */
  region?: string;
  module: string;
  target: string;
  success: boolean;
  /** Our failed_reason when it fails. */
  reason?: string;
}

describe.skipIf(!ok)("every kind through the binaries, next to blackbox_exporter", () => {
  let web = "";
  let bb = "";
  let http: TestServers;
  let tcpPlain: TcpTestServer;
  let tcpTls: TcpTestServer;
  let dns: DnsTestServer;
  let grpcPlain: RunningServer;
  let grpcTls: RunningServer;
  const cases: Case[] = [];
  /** A banner server in its own process, frozen with SIGSTOP by the fault test. */
  let frozen: Proc;
  let frozenTarget = "";

  beforeAll(async () => {
    const certs = await makeCerts();
    const tlsOpts = { cert: await Bun.file(certs.serverCert).text(), key: await Bun.file(certs.serverKey).text() };
    http = await startTestServers();
    tcpPlain = await startTcpServer(banner("SSH-2.0-OpenSSH_9.2 test"));
    tcpTls = await startTcpServer(banner("+OK pop3 ready"), { tls: tlsOpts });
    const closed = await closedPort();
    dns = await startDnsServer("127.0.0.1");
    grpcPlain = await startHealthServer({ statuses: { "": ServingStatus.SERVING, down: ServingStatus.NOT_SERVING } });
    grpcTls = await startHealthServer({ tls: tlsOpts });
    const dir = mkdtempSync(`${tmpdir()}/pm-kinds-`);
    const frozenPort = await freePort();
    frozenTarget = `127.0.0.1:${frozenPort}`;
    frozen = start([process.execPath, "-e", `require("node:net").createServer((c) => { c.on("error", () => {}); c.write("SSH-2.0-frozen\\r\\n"); }).listen(${frozenPort}, "127.0.0.1", () => console.log("listening"))`]);
    await waitFor("the banner process listening", 10_000, () => frozen.output().includes("listening"));
    cases.push(
      { kind: "tcp", module: "banner_1s", region: "f", target: frozenTarget, success: true },
      { kind: "icmp", module: "icmp", target: "127.0.0.1", success: true },
      { kind: "http", module: "http_2xx", target: `http://127.0.0.1:${http.httpPort}/ok`, success: true },
      { kind: "http", module: "http_2xx", target: `http://127.0.0.1:${http.httpPort}/500`, success: false, reason: "status_code" },
      { kind: "http", module: "https_ca", target: `https://localhost:${http.httpsPort}/ok`, success: true },
      { kind: "http", module: "http_post_2xx", region: "h1", target: `http://127.0.0.1:${http.httpPort}/echo`, success: true },
      { kind: "http", module: "http_no_follow", region: "h2", target: `http://127.0.0.1:${http.httpPort}/redirect/1`, success: false, reason: "status_code" },
      { kind: "http", module: "http_follow", region: "h3", target: `http://127.0.0.1:${http.httpPort}/redirect/3`, success: true },
      { kind: "http", module: "http_500_ok", region: "h1", target: `http://127.0.0.1:${http.httpPort}/500`, success: true },
      { kind: "http", module: "http_body_match", region: "h4", target: `http://127.0.0.1:${http.httpPort}/ok`, success: true },
      { kind: "http", module: "http_body_nomatch", region: "h5", target: `http://127.0.0.1:${http.httpPort}/ok`, success: false, reason: "body_regexp" },
      { kind: "http", module: "http_header_match", region: "h6", target: `http://127.0.0.1:${http.httpPort}/headers`, success: false, reason: "header_regexp" },
      { kind: "http", module: "http_not_ssl", region: "h7", target: `http://127.0.0.1:${http.httpPort}/ok`, success: false, reason: "ssl" },
      { kind: "http", module: "http_basic_auth", region: "h1", target: `http://127.0.0.1:${http.httpPort}/auth`, success: true },
      { kind: "http", module: "http_version_11", region: "h8", target: `http://127.0.0.1:${http.httpPort}/ok`, success: true },
      { kind: "http", module: "http_timeout", region: "h1", target: `http://127.0.0.1:${http.httpPort}/hang`, success: false, reason: "timeout" },
      { kind: "tcp", module: "ssh_banner", target: tcpPlain.target, success: true },
      { kind: "tcp", module: "tcp_connect", target: `127.0.0.1:${closed}`, success: false, reason: "connect" },
      { kind: "tcp", module: "pop3s_banner", target: tcpTls.target, success: true },
      { kind: "dns", module: "dns_a", target: `127.0.0.1:${dns.port}`, success: true },
      { kind: "dns", module: "dns_nx", region: "t2", target: `127.0.0.1:${dns.port}`, success: false, reason: "rcode" },
      { kind: "grpc", module: "grpc_plain", target: `127.0.0.1:${grpcPlain.port}`, success: true },
      { kind: "grpc", module: "grpc_down", region: "t2", target: `127.0.0.1:${grpcPlain.port}`, success: false, reason: "not_serving" },
      { kind: "grpc", module: "grpc_tls", target: `127.0.0.1:${grpcTls.port}`, success: true },
    );
    // blackbox_exporter 0.23's option names; files by absolute path (both read them).
    const modules = `modules:
  icmp:
    prober: icmp
    timeout: 5s
  http_2xx:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip4}
  https_ca:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip4, tls_config: {ca_file: "${http.caFile}"}}
  http_post_2xx:
    prober: http
    timeout: 5s
    http: {method: POST, body: '{"a":1}', headers: {Content-Type: application/json}, preferred_ip_protocol: ip4}
  http_no_follow:
    prober: http
    timeout: 5s
    http: {follow_redirects: false, preferred_ip_protocol: ip4}
  http_follow:
    prober: http
    timeout: 5s
    http: {follow_redirects: true, preferred_ip_protocol: ip4}
  http_500_ok:
    prober: http
    timeout: 5s
    http: {valid_status_codes: [500], preferred_ip_protocol: ip4}
  http_body_match:
    prober: http
    timeout: 5s
    http: {fail_if_body_not_matches_regexp: ["^ok b.dy$"], preferred_ip_protocol: ip4}
  http_body_nomatch:
    prober: http
    timeout: 5s
    http: {fail_if_body_matches_regexp: ["(?i)OK"], preferred_ip_protocol: ip4}
  http_header_match:
    prober: http
    timeout: 5s
    http: {fail_if_header_matches: [{header: X-Probe, regexp: "mesh-[0-9]"}], preferred_ip_protocol: ip4}
  http_not_ssl:
    prober: http
    timeout: 5s
    http: {fail_if_not_ssl: true, preferred_ip_protocol: ip4}
  http_basic_auth:
    prober: http
    timeout: 5s
    http: {basic_auth: {username: u, password: p}, preferred_ip_protocol: ip4}
  http_version_11:
    prober: http
    timeout: 5s
    http: {valid_http_versions: ["HTTP/1.1"], preferred_ip_protocol: ip4}
  http_timeout:
    prober: http
    timeout: 1s
    http: {preferred_ip_protocol: ip4}
  banner_1s:
    prober: tcp
    timeout: 1s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - expect: "^SSH-2.0-"
  ssh_banner:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - expect: "^SSH-2.0-"
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp: {preferred_ip_protocol: ip4}
  pop3s_banner:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config: {ca_file: "${certs.caFile}"}
      query_response:
        - expect: "^[+]OK"
  dns_a:
    prober: dns
    timeout: 5s
    dns: {query_name: example.com, query_type: A, preferred_ip_protocol: ip4, validate_answer_rrs: {fail_if_not_matches_regexp: ["example.com.\\t.*\\tIN\\tA\\t127.0.0.[12]"]}}
  dns_nx:
    prober: dns
    timeout: 5s
    dns: {query_name: nothing.example.com, query_type: A, preferred_ip_protocol: ip4}
  grpc_plain:
    prober: grpc
    timeout: 5s
    grpc: {preferred_ip_protocol: ip4}
  grpc_down:
    prober: grpc
    timeout: 5s
    grpc: {service: down, preferred_ip_protocol: ip4}
  grpc_tls:
    prober: grpc
    timeout: 5s
    grpc: {tls: true, preferred_ip_protocol: ip4, tls_config: {ca_file: "${certs.caFile}"}}
`;
    const byModule = new Map<string, Case[]>();
    for (const c of cases) byModule.set(c.module, [...(byModule.get(c.module) ?? []), c]);
    const blocks = [...byModule].map(([m, cs]) => `  - region: ${cs[0]!.region ?? "t"}\n    module: ${m}\n    targets: [${cs.map((c) => JSON.stringify(c.target)).join(", ")}]\n`).join("");
    writeFileSync(`${dir}/blackbox.yml`, modules);
    writeFileSync(`${dir}/probes.yml`, `${modules}prober_configs:\n${blocks}`);

    const [rpc, webPort, bbPort] = [await freePort(), await freePort(), await freePort()];
    web = `http://127.0.0.1:${webPort}`;
    bb = `http://127.0.0.1:${bbPort}`;
    start([SERVER_BIN, "-server.probe.file", `${dir}/probes.yml`, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${webPort}`, "-server.aggregation.interval", "1s", "-server.icmp.discovery", "static"]);
    start([AGENT_BIN, "-region", "a", "-agent.ip", "127.0.91.1", "-server.rpc.addr", `127.0.0.1:${rpc}`, "-agent.probe.interval", "1s", "-agent.sync.interval", "500ms"]);
    start([blackbox!, `--config.file=${dir}/blackbox.yml`, `--web.listen-address=127.0.0.1:${bbPort}`]);
    await waitFor("blackbox_exporter up", 20_000, async () => (await fetch(`${bb}/-/healthy`).catch(() => undefined))?.ok);
  }, 60_000);

  afterAll(async () => {
    await killAll();
    http?.close();
    await Promise.all([tcpPlain?.close(), tcpTls?.close(), dns?.close(), grpcPlain?.close(), grpcTls?.close()]);
  });

  /** Our verdict per case: from /api/v1/targets (check kinds) and /api/v1/mesh (icmp). */
  async function ours(): Promise<Map<Case, { success: boolean; reasons: string[] }> | undefined> {
    const t = (await (await fetch(`${web}/api/v1/targets`)).json()) as { targets: { kind: string; target_region: string; target_addr: string; results: number; failed: Record<string, number> }[] };
    const m = (await (await fetch(`${web}/api/v1/mesh`)).json()) as { pairs: { source_region: string; target_region: string; loss_ratio: number }[] };
    const out = new Map<Case, { success: boolean; reasons: string[] }>();
    for (const c of cases) {
      if (c.kind === "icmp") {
        const p = m.pairs.find((x) => x.source_region === "a" && x.target_region === "t");
        if (!p) return undefined;
        out.set(c, { success: p.loss_ratio === 0, reasons: [] });
        continue;
      }
      const x = t.targets.find((y) => y.kind === c.kind && y.target_addr === c.target && y.target_region === (c.region ?? "t"));
      if (!x || x.results === 0) return undefined;
      out.set(c, { success: Object.keys(x.failed).length === 0, reasons: Object.keys(x.failed) });
    }
    return out;
  }

  test("each (module, target) gets the same verdict from the mesh and from blackbox_exporter, and the expected one", async () => {
    const got = await waitFor("results of every kind", 40_000, ours);
    const rows = await Promise.all(cases.map(async (c) => {
      const text = await (await fetch(`${bb}/probe?module=${c.module}&target=${encodeURIComponent(c.target)}`)).text();
      const bbSuccess = /^probe_success (\d)/m.exec(text)?.[1] === "1";
      const mine = got.get(c)!;
      return { case: `${c.module} ${c.target}`, expected: c.success, mesh: mine.success, blackbox: bbSuccess, reason: mine.success ? "" : mine.reasons.join(",") };
    }));
    console.log(rows.map((r) => `${r.case}: expected ${r.expected}, mesh ${r.mesh}${r.reason ? ` (${r.reason})` : ""}, blackbox ${r.blackbox}`).join("\n"));
    for (const r of rows) expect(r).toEqual({ ...r, mesh: r.expected, blackbox: r.expected });
    for (const c of cases.filter((x) => !x.success && x.reason)) expect({ case: `${c.module} ${c.target}`, reasons: got.get(c)!.reasons }).toEqual({ case: `${c.module} ${c.target}`, reasons: [c.reason!] });
  }, 90_000);

  test("a target process frozen with SIGSTOP turns its tcp check into timeouts on the console's API and /metrics; SIGCONT brings success back", async () => {
    const status = async () => {
      const t = (await (await fetch(`${web}/api/v1/targets?kind=tcp`)).json()) as { targets: { target_addr: string; failed: Record<string, number>; results: number }[] };
      return t.targets.find((x) => x.target_addr === frozenTarget);
    };
    const failedTimeouts = async () => {
      const line = (await (await fetch(`${web}/metrics`)).text()).split("\n").find((l) => l.startsWith("prober_tcp_probes_failed_total{") && l.includes(`target_addr="${frozenTarget}"`) && l.includes('failed_reason="timeout"'));
      return Number(line?.split(" ").at(-1) ?? 0);
    };
    await waitFor("the banner target passing", 20_000, async () => { const x = await status(); return x && x.results > 0 && Object.keys(x.failed).length === 0; });
    frozen.proc.kill("SIGSTOP");
    // The kernel still completes the handshake (the listen backlog); the frozen process never sends its banner.
    const down = await waitFor("timeouts while frozen", 20_000, async () => { const x = await status(); return x && x.failed.timeout ? x : undefined; });
    expect(Object.keys(down.failed)).toEqual(["timeout"]);
    expect(await failedTimeouts()).toBeGreaterThan(0);
    frozen.proc.kill("SIGCONT");
    await waitFor("success again after SIGCONT", 20_000, async () => { const x = await status(); return x && x.results > 0 && Object.keys(x.failed).length === 0; });
  }, 70_000);

  test("/metrics carries every check kind's family with the labels the rules and dashboards read", async () => {
    const text = await (await fetch(`${web}/metrics`)).text();
    const has = (re: RegExp) => re.test(text);
    for (const c of cases.filter((x) => x.kind !== "icmp")) {
      const l = `source_region="a",target_region="${c.region ?? "t"}",target_addr="${c.target}"`;
      expect({ c: c.module, total: has(new RegExp(`^prober_${c.kind}_probes_total\\{${esc(l)}\\} [1-9]`, "m")) }).toEqual({ c: c.module, total: true });
      if (c.success) expect({ c: c.module, phase: has(new RegExp(`^prober_${c.kind}_duration_seconds\\{${esc(l)},phase="[a-z]+"\\} `, "m")) }).toEqual({ c: c.module, phase: true });
      else expect({ c: c.module, failed: has(new RegExp(`^prober_${c.kind}_probes_failed_total\\{${esc(l)},failed_reason="${c.reason}"\\} [1-9]`, "m")) }).toEqual({ c: c.module, failed: true });
    }
    for (const [kind, target] of [["tcp", tcpTls.target], ["grpc", `127.0.0.1:${grpcTls.port}`], ["http", `https://localhost:${http.httpsPort}/ok`]] as const) {
      expect({ kind, expiry: has(new RegExp(`^prober_${kind}_ssl_earliest_cert_expiry\\{source_region="a",target_region="t",target_addr="${esc(target)}"\\} [1-9]`, "m")) }).toEqual({ kind, expiry: true });
    }
    expect(has(/^prober_dns_duration_seconds\{.*phase="query"\} /m)).toBe(true);
    expect(has(/^prober_grpc_duration_seconds\{.*phase="check"\} /m)).toBe(true);
    expect(has(/^prober_tcp_duration_seconds\{.*phase="tls"\} /m)).toBe(true);
  });
});

/** Escapes a string for use inside a RegExp. */
function esc(s: string): string {
  return s.replace(/[-/\\^$*+?.()|[\]{}]/g, "\\$&");
}
