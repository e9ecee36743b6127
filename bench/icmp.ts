/**
 * ICMP benchmark: ProberMesh's engine against iputils `ping` and `fping`, side by side in one run,
 * on the same targets. Needs root (raw sockets, network namespaces), ping, fping and iproute2
 * (Debian: apt-get install iputils-ping fping iproute2). Prints markdown tables.
 *
 *   npm run bench:icmp            # accuracy + throughput at N = 100, 1,000, 10,000
 *   npm run bench:icmp -- --quick # N = 100, 1,000 only
 *
 * Accuracy: 300 echoes 5 ms apart to 127.0.0.1 and across a veth pair (two namespaces created and
 * removed here), per tool: median and p99 RTT; the last column is ours minus the peer's.
 * Throughput: N distinct loopback targets, 64 echoes each 15 ms apart, one round, all targets
 * started together (fping: -C 64 -p 15 -i 0, its finest -i as root). Wall time, CPU seconds
 * (user+system) and peak RSS of the process; false loss = unanswered echoes (loopback never drops).
 */
import { spawn } from "bun";
import { writeFileSync, rmSync } from "node:fs";
import { createNsPair } from "../tests/helpers/netns.ts";
import { quantile } from "../tests/helpers/stats.ts";
import { loopbackTargets } from "./targets.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const quick = process.argv.includes("--quick");
const PAYLOAD = 56; // ping's and fping's default data size

interface Measured { code: number; stdout: string; stderr: string; wallS: number; cpuS: number; rssMB: number }

/** Runs a command to completion; wall from spawn to exit, CPU and peak RSS from its rusage. */
async function measure(cmd: string[]): Promise<Measured> {
  const t0 = performance.now();
  const p = spawn(cmd, { stdout: "pipe", stderr: "pipe", cwd: ROOT });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const wallS = (performance.now() - t0) / 1000;
  const ru = p.resourceUsage()!;
  return { code, stdout, stderr, wallS, cpuS: Number(ru.cpuTime.total) / 1e6, rssMB: ru.maxRSS / 1e6 };
}

/** fping -C output lines "ip : 0.031 - 0.020" → RTTs in seconds and the count of "-" (lost). */
function parseFping(text: string): { rtts: number[]; lost: number } {
  const rtts: number[] = [];
  let lost = 0;
  for (const line of text.split("\n")) {
    const m = /^\S+\s+:\s+(.*)$/.exec(line);
    if (!m) continue;
    for (const t of m[1]!.trim().split(/\s+/)) {
      if (t === "-") lost++;
      else if (/^[\d.]+$/.test(t)) rtts.push(Number(t) / 1000);
    }
  }
  return { rtts, lost };
}

async function accuracy(): Promise<string[]> {
  const count = 300, intervalMs = 5;
  const pair = await createNsPair("bench");
  const rows: string[] = ["| path | tool | received | median RTT µs | p99 RTT µs | median − ours µs | p99 − ours µs |", "|---|---|---|---|---|---|---|"];
  try {
    for (const [path, ip, prefix] of [["loopback", "127.0.0.1", []], ["veth (2 namespaces)", pair.farIp, pair.inNear]] as const) {
      const ours = await measure([...prefix, process.execPath, `${ROOT}tests/fixtures/echo.ts`, JSON.stringify({ rounds: [{ ip, count, intervalMs, payloadSize: PAYLOAD }] })]);
      const oursRtts: number[] = JSON.parse(ours.stdout).rounds[0].outcome.rttsSeconds;
      const ping = await measure([...prefix, "ping", "-n", "-c", String(count), "-i", String(intervalMs / 1000), "-s", String(PAYLOAD), ip]);
      const pingRtts = [...ping.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) / 1000);
      const fping = await measure([...prefix, "fping", "-C", String(count), "-p", String(intervalMs), "-b", String(PAYLOAD), "-q", ip]);
      const fpingRtts = parseFping(fping.stderr).rtts;
      const om = quantile(oursRtts, 0.5), o99 = quantile(oursRtts, 0.99);
      for (const [tool, rtts] of [["ProberMesh", oursRtts], ["iputils ping", pingRtts], ["fping", fpingRtts]] as const) {
        const m = quantile(rtts, 0.5), p = quantile(rtts, 0.99);
        const d = tool === "ProberMesh" ? ["", ""] : [((m - om) * 1e6).toFixed(1), ((p - o99) * 1e6).toFixed(1)];
        rows.push(`| ${path} | ${tool} | ${rtts.length}/${count} | ${(m * 1e6).toFixed(1)} | ${(p * 1e6).toFixed(1)} | ${d[0]} | ${d[1]} |`);
      }
    }
  } finally {
    await pair.remove();
  }
  return rows;
}

interface Throughput { tool: string; n: number; wallS: number; cpuS: number; rssMB: number; sent: number; lost: number; note: string }

async function oursRound(n: number): Promise<Throughput> {
  const m = await measure([process.execPath, `${ROOT}bench/icmp_round.ts`, String(n), "64", "15", "1000", String(PAYLOAD)]);
  if (m.code !== 0) return { tool: "ProberMesh", n, wallS: m.wallS, cpuS: m.cpuS, rssMB: m.rssMB, sent: 0, lost: 0, note: `failed: ${m.stderr.trim().slice(0, 120)}` };
  const r = JSON.parse(m.stdout);
  return { tool: "ProberMesh", n, wallS: m.wallS, cpuS: m.cpuS, rssMB: m.rssMB, sent: r.sent, lost: r.sent - r.received, note: `round ${r.roundSeconds.toFixed(2)} s in-process` };
}

async function fpingRound(n: number, processes = 1): Promise<Throughput> {
  const per = Math.ceil(n / processes);
  const all = loopbackTargets(n);
  const files = Array.from({ length: processes }, (_, i) => {
    const f = `/tmp/pm-bench-fping-${process.pid}-${i}.txt`;
    writeFileSync(f, all.slice(i * per, (i + 1) * per).join("\n") + "\n");
    return f;
  });
  const t0 = performance.now();
  const runs = await Promise.all(files.map((f) => measure(["fping", "-C", "64", "-p", "15", "-i", "0", "-t", "1000", "-b", String(PAYLOAD), "-q", "-f", f])));
  const wallS = (performance.now() - t0) / 1000;
  for (const f of files) rmSync(f, { force: true });
  const tool = processes === 1 ? "fping" : `fping ×${processes} processes`;
  const failed = runs.find((r) => /error/i.test(r.stderr) && parseFping(r.stderr).rtts.length === 0);
  let sent = 0, lost = 0;
  for (const r of runs) {
    const p = parseFping(r.stderr);
    sent += p.rtts.length + p.lost;
    lost += p.lost;
  }
  const note = failed ? `failed: ${failed.stderr.split("\n").find((l) => /error/i.test(l))?.trim().slice(0, 110)}` : "";
  return { tool, n, wallS, cpuS: runs.reduce((a, r) => a + r.cpuS, 0), rssMB: runs.reduce((a, r) => a + r.rssMB, 0), sent, lost, note };
}

async function throughput(): Promise<{ rows: string[]; ratios: string[]; verdict: string[] }> {
  const rows = ["| targets | tool | wall s | CPU s | CPU cores (per 15 s) | peak RSS MB | echoes | false loss | note |", "|---|---|---|---|---|---|---|---|---|"];
  const ratios: string[] = [];
  const verdict: string[] = [];
  for (const n of quick ? [100, 1000] : [100, 1000, 10_000]) {
    const ours = await oursRound(n);
    let peer = await fpingRound(n);
    const results = [ours, peer];
    if (peer.note.startsWith("failed") && n > 1000) {
      peer = await fpingRound(n, n / 1000); // fping cannot hold the round in one process; split it
      results.push(peer);
    }
    for (const t of results) {
      rows.push(`| ${t.n.toLocaleString("en")} | ${t.tool} | ${t.wallS.toFixed(2)} | ${t.cpuS.toFixed(2)} | ${(t.cpuS / 15).toFixed(2)} | ${t.rssMB.toFixed(0)} | ${t.sent.toLocaleString("en")} | ${t.lost} | ${t.note} |`);
    }
    ratios.push(`N=${n.toLocaleString("en")}: ours/${peer.tool}: wall ${(ours.wallS / peer.wallS).toFixed(2)}, CPU ${(ours.cpuS / peer.cpuS).toFixed(2)}, RSS ${(ours.rssMB / peer.rssMB).toFixed(2)}`);
    if (n === 10_000) {
      const ok = ours.wallS < 15 && ours.lost === 0 && ours.cpuS < 15 && ours.rssMB < 200;
      verdict.push(`10,000 targets × 64 echoes: ${ok ? "within" : "NOT within"} one 15 s interval (wall ${ours.wallS.toFixed(2)} s, ${ours.lost} false loss, ${(ours.cpuS / 15).toFixed(2)} CPU cores over the interval, ${ours.rssMB.toFixed(0)} MB peak RSS)`);
    }
  }
  return { rows, ratios, verdict };
}

if (process.getuid?.() !== 0) {
  console.error("bench/icmp.ts needs root: raw ICMP sockets for all three tools and network namespaces for the veth path");
  process.exit(2);
}
console.log(`## ICMP accuracy (${PAYLOAD}-byte payload, 300 echoes 5 ms apart)\n`);
console.log((await accuracy()).join("\n"));
console.log(`\n## ICMP throughput (64 echoes per target 15 ms apart, one round)\n`);
const t = await throughput();
console.log(t.rows.join("\n"));
console.log("");
for (const v of t.verdict) console.log(v);
console.log("Ratios (ours / fping; < 1 means ours is faster or smaller):");
for (const r of t.ratios) console.log(`  ${r}`);
