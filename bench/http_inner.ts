/**
 * The part of bench/http.ts that runs inside the benchmark namespace: the phase comparison against
 * curl and blackbox_exporter, and the throughput / leak run. Phases in the tables are milliseconds.
 */
import { create } from "@bufbuild/protobuf";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import type net from "node:net";
import { dirname } from "node:path";
import pLimit from "p-limit";
import { HTTP_CONCURRENCY } from "../lib/agent/kinds.ts";
import { HttpPhaseProber } from "../lib/probes/http/prober.ts";
import { HttpTargetSchema } from "../lib/rpc/gen/probermesh/v1/http_pb.ts";
import { httpKind } from "../lib/probes/http/kind.ts";
import { startTestServers } from "../tests/helpers/http_servers.ts";
import { freePort, start } from "../tests/helpers/procs.ts";
import { quantile } from "../tests/helpers/stats.ts";

const PHASES = ["resolve", "connect", "tls", "processing", "transfer"] as const;
type Phases = Record<(typeof PHASES)[number], number>;

/**
 * `n` probes of `url` by one curl process (warm, like a long-running prober), each on a fresh
 * connection (Connection: close) with a full TLS handshake (--no-sessionid); curl's cumulative
 * -w timers turned into blackbox's phases (seconds).
 */
async function curlPhases(url: string, caFile: string, n: number, freshProcessEach = false, h2 = false): Promise<Phases[]> {
  if (freshProcessEach) {
    const out: Phases[] = [];
    for (let i = 0; i < n; i++) out.push(...(await curlPhases(url, caFile, 1, false, h2)));
    return out;
  }
  const fmt = "%{time_namelookup} %{time_connect} %{time_appconnect} %{time_starttransfer} %{time_total}\\n";
  const urls = Array.from({ length: n }, () => ["-o", "/dev/null", url]).flat();
  // HTTP/2 forbids a Connection header (RFC 9113 §8.2.2): there, a fresh process per probe gives a fresh connection.
  const p = Bun.spawn(["curl", "-s", "--no-sessionid", ...(h2 ? [] : ["-H", "Connection: close"]), "--cacert", caFile, "-w", fmt, ...urls], { stdout: "pipe" });
  const text = await new Response(p.stdout).text();
  await p.exited;
  return text.trim().split("\n").map((line) => {
    const [dns, conn, app, start, total] = line.split(" ").map(Number) as [number, number, number, number, number];
    const ready = app > 0 ? app : conn;
    return { resolve: dns, connect: conn - dns, tls: app > 0 ? app - conn : 0, processing: start - ready, transfer: total - start };
  });
}

/** One blackbox_exporter /probe, its probe_http_duration_seconds by phase. */
async function blackboxPhases(port: number, module: string, url: string): Promise<Phases> {
  const text = await (await fetch(`http://127.0.0.1:${port}/probe?module=${module}&target=${encodeURIComponent(url)}`)).text();
  const out = {} as Phases;
  for (const ph of PHASES) out[ph] = Number(new RegExp(`probe_http_duration_seconds\\{phase="${ph}"\\} (\\S+)`).exec(text)?.[1] ?? NaN);
  if (!/probe_success 1/.test(text)) throw new Error(`blackbox probe of ${url} failed:\n${text.slice(0, 400)}`);
  return out;
}

/**
 * An HTTP/2 server (ALPN h2, no HTTP/1.1) with the test servers' certificate: /slow?ms= holds the
 * answer, /stream?ms= sends the second half later.
 */
async function startH2(caFile: string): Promise<{ port: number; close(): void }> {
  const dir = dirname(caFile);
  const s = http2.createSecureServer({ key: readFileSync(`${dir}/k.pem`), cert: readFileSync(`${dir}/c.pem`) }, (req, res) => {
    const u = new URL(req.url, "https://x");
    const ms = Number(u.searchParams.get("ms") ?? 50);
    if (u.pathname === "/stream") {
      res.write("first ");
      setTimeout(() => res.end("second"), ms);
    } else setTimeout(() => res.end("slow body"), ms);
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return { port: (s.address() as net.AddressInfo).port, close: () => s.close() };
}

/** Phase medians of ours, curl and blackbox_exporter on each target; a markdown table. */
export async function runComparison(n: number): Promise<string> {
  const srv = await startTestServers();
  const h2 = await startH2(srv.caFile);
  const bbPort = await freePort();
  const bbConfig = `/tmp/pm-bench-bb-${process.pid}.yml`;
  writeFileSync(bbConfig, `modules:\n  http:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n      tls_config: {ca_file: "${srv.caFile}"}\n`);
  const bb = start(["prometheus-blackbox-exporter", `--config.file=${bbConfig}`, `--web.listen-address=127.0.0.1:${bbPort}`]);
  for (let i = 0; i < 100; i++) {
    if (await fetch(`http://127.0.0.1:${bbPort}/-/healthy`).then((r) => r.ok, () => false)) break;
    await Bun.sleep(50);
  }
  const module = httpKind.moduleSchema("/").parse({ timeout: "5s", tls_config: { ca_file: srv.caFile } });
  const prober = new HttpPhaseProber();
  // [label, url, relative bound]: a phase agrees when |ours - peer| <= max(1 ms, bound x peer).
  const targets: [string, string, number][] = [
    ["resolve (DNS answers after 20 ms)", `http://dns.test:${srv.httpPort}/ok`, 0.1],
    ["processing (first byte after 50 ms)", `http://127.0.0.1:${srv.httpPort}/slow?ms=50`, 0.1],
    ["transfer (second chunk after 50 ms)", `http://127.0.0.1:${srv.httpPort}/stream?ms=50`, 0.1],
    ["transfer, last chunk with FIN after 50 ms (HTTP)", `http://127.0.0.1:${srv.finPort}/?ms=50`, 0.05],
    ["transfer, last chunk with FIN after 50 ms (HTTPS)", `https://localhost:${srv.finsPort}/?ms=50`, 0.05],
    ["tls (HTTPS, CA-signed)", `https://localhost:${srv.httpsPort}/ok`, 0.1],
    // HTTP/2 by ALPN (all three negotiate h2: blackbox's and curl's default too).
    ["HTTP/2: processing (answer after 50 ms)", `https://localhost:${h2.port}/slow?ms=50`, 0.1],
    ["HTTP/2: transfer (second half after 50 ms)", `https://localhost:${h2.port}/stream?ms=50`, 0.1],
  ];
  const rows = [
    `## HTTP phases, median of ${n} probes per tool (ms)\n`,
    "Every probe uses a fresh connection and a full TLS handshake. curl runs the probes of a target in one",
    "process (`--no-sessionid`, `Connection: close`), except for the resolve row (a process per probe, since",
    "curl caches DNS answers, and the HTTP/2 rows, where curl may not send `Connection: close`); blackbox_exporter is queried through `/probe`. The HTTP/2 rows: every tool",
    "offers h2 by ALPN (ProberMesh's enable_http2 default, blackbox's, curl's) to a server that speaks only h2;",
    "there curl's tls holds a cold process's TLS start, so \"within\" compares with blackbox_exporter only.\n",
    "| target | phase | ProberMesh | curl -w | blackbox_exporter | ours − curl | ours − blackbox | bound | within it of both |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  try {
    for (const [label, url, bound] of targets) {
      const samples: Record<string, Phases[]> = { ours: [], curl: [], bb: [] };
      for (let i = 0; i < n; i++) {
        const r = await prober.probe(create(HttpTargetSchema, { targetRegion: "b", url, module }));
        if (!r.success) throw new Error(`ours failed on ${url}: ${r.error}`);
        samples.ours!.push({ resolve: r.resolveSeconds, connect: r.connectSeconds, tls: r.tlsSeconds, processing: r.processingSeconds, transfer: r.transferSeconds });
        samples.bb!.push(await blackboxPhases(bbPort, "http", url));
      }
      // curl caches DNS answers within a process: the resolve row needs a process per probe (and the HTTP/2 rows, see curlPhases).
      const h2row = label.startsWith("HTTP/2");
      samples.curl = await curlPhases(url, srv.caFile, n, label.startsWith("resolve") || h2row, h2row);
      for (const ph of PHASES) {
        const [o, c, b] = (["ours", "curl", "bb"] as const).map((t) => quantile(samples[t]!.map((s) => s[ph]), 0.5) * 1000) as [number, number, number];
        // A fresh curl process's TLS includes its cold start: the HTTP/2 rows are judged against blackbox only.
        const ok = (h2row ? [b] : [c, b]).every((x) => Math.abs(o - x) <= Math.max(1, bound * x));
        rows.push(`| ${label} | ${ph} | ${o.toFixed(3)} | ${c.toFixed(3)} | ${b.toFixed(3)} | ${(o - c).toFixed(3)} | ${(o - b).toFixed(3)} | max(1 ms, ${bound * 100} %) | ${ok ? "yes" : "NO"} |`);
      }
    }
  } finally {
    await bb.kill();
    srv.close();
    h2.close();
  }
  return rows.join("\n");
}

/** 1,000 targets per round with the agent's concurrency; CPU and open fds early vs late. */
export async function runThroughput(targets: number, rounds: number): Promise<string> {
  const srv = await startTestServers();
  const module = httpKind.moduleSchema("/").parse({ timeout: "5s", tls_config: { ca_file: srv.caFile } });
  const urls = Array.from({ length: targets }, (_, i) =>
    i % 10 === 9 ? `https://localhost:${srv.httpsPort}/ok?t=${i}` : `http://127.0.0.1:${srv.httpPort}/ok?t=${i}`);
  const list = urls.map((url) => create(HttpTargetSchema, { targetRegion: "b", url, module }));
  const prober = new HttpPhaseProber();
  const limit = pLimit(HTTP_CONCURRENCY);
  const fds = () => readdirSync("/proc/self/fd").length;
  const perRound: { wall: number; cpu: number; fds: number; ok: number; phases: number }[] = [];
  for (let k = 0; k < rounds; k++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const results = await Promise.all(list.map((t) => limit(() => prober.probe(t))));
    const cpu = process.cpuUsage(c0);
    const ok = results.filter((r) => r.success).length;
    const phases = results.filter((r) => r.connectSeconds > 0 && r.processingSeconds > 0 && (r.url.startsWith("http:") || r.tlsSeconds > 0)).length;
    perRound.push({ wall: (performance.now() - t0) / 1000, cpu: (cpu.user + cpu.system) / 1e6, fds: fds(), ok, phases });
  }
  srv.close();
  const avg = (xs: typeof perRound, f: (x: (typeof perRound)[number]) => number) => xs.reduce((a, x) => a + f(x), 0) / xs.length;
  const early = perRound.slice(0, Math.min(10, rounds));
  const late = perRound.slice(-10);
  const rss = process.memoryUsage().rss / 1e6;
  return [
    `\n## HTTP throughput: ${targets.toLocaleString("en")} targets per round (10 % HTTPS), ${HTTP_CONCURRENCY} at a time, ${rounds} rounds back to back\n`,
    "| rounds | wall s per round | CPU s per round | successes | all phases recorded | open fds after |",
    "|---|---|---|---|---|---|",
    `| 1-${early.length} | ${avg(early, (x) => x.wall).toFixed(2)} | ${avg(early, (x) => x.cpu).toFixed(2)} | ${Math.min(...early.map((x) => x.ok))}/${targets} | ${Math.min(...early.map((x) => x.phases))}/${targets} | ${early.at(-1)!.fds} |`,
    `| ${rounds - late.length + 1}-${rounds} | ${avg(late, (x) => x.wall).toFixed(2)} | ${avg(late, (x) => x.cpu).toFixed(2)} | ${Math.min(...late.map((x) => x.ok))}/${targets} | ${Math.min(...late.map((x) => x.phases))}/${targets} | ${late.at(-1)!.fds} |`,
    "",
    `Slowest round ${Math.max(...perRound.map((x) => x.wall)).toFixed(2)} s (limit: one 15 s interval); RSS at the end ${rss.toFixed(0)} MB.`,
  ].join("\n");
}
