/**
 * Path trace benchmark: ProberMesh's PathTracer and `mtr --report` (Debian mtr-tiny) on the same
 * namespace line agent → r1 → r2 → target (tests/helpers/pathbed.ts), with the target answering
 * and then silent (icmp_echo_ignore_all), IPv4 and IPv6. Prints both paths side by side: address,
 * loss and mean RTT per hop, and each tool's wall time. Needs root, iproute2 and mtr.
 *
 *   sudo bun run bench/trace.ts [--probes 10] [--interval-ms 100]
 *
 * The bed's routers answer every expired probe (icmp_ratelimit=0); real routers rate-limit ICMP
 * errors, which both tools then show as loss at that hop only.
 */
import { createPathBed } from "../tests/helpers/pathbed.ts";
import { ROOT, run } from "../tests/helpers/procs.ts";
import type { TraceOutcome } from "../lib/probes/icmp/trace.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const probes = arg("probes", 10);
const intervalMs = arg("interval-ms", 100);

interface Hop { address: string; loss: number; avgMs: number | null }

/** mtr --report rows: "  1.|-- 10.0.0.1  0.0%  10  0.1  0.1 ..." (Loss% Snt Last Avg Best Wrst StDev). */
function parseMtr(text: string): Hop[] {
  const hops: Hop[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*\d+\.\|--\s+(\S+)\s+([\d.]+)%?\s+(\d+)\s+([\d.]+)\s+([\d.]+)/.exec(line);
    if (!m) continue;
    const loss = Number(m[2]) / 100;
    hops.push({ address: m[1] === "???" ? "" : m[1]!, loss, avgMs: loss < 1 ? Number(m[5]) : null });
  }
  return hops;
}

const bed = await createPathBed("bench");
const rows: string[] = [];
try {
  for (const silent of [false, true]) {
    await bed.silenceTarget(silent);
    for (const ip of [bed.targetIp, bed.targetIp6]) {
      let t = performance.now();
      const ours = await run([...bed.inAgent, process.execPath, `${ROOT}tests/fixtures/trace.ts`, "raw", JSON.stringify({ probes, probeIntervalMs: intervalMs, timeoutMs: 1000, maxHops: 30 }), ip]);
      const oursS = (performance.now() - t) / 1000;
      const o = JSON.parse(ours.stdout.trim()) as TraceOutcome;
      t = performance.now();
      const mtr = await run([...bed.inAgent, "mtr", "--report", "--report-wide", "-n", "-c", String(probes), "-i", String(intervalMs / 1000), ip]);
      const mtrS = (performance.now() - t) / 1000;
      const theirs = parseMtr(mtr.stdout);
      const mine: Hop[] = o.hops.map((h) => ({
        address: h.address, loss: h.sent ? 1 - h.received / h.sent : 1,
        avgMs: h.rttsSeconds.length ? (h.rttsSeconds.reduce((a, b) => a + b, 0) / h.rttsSeconds.length) * 1000 : null,
      }));
      const n = Math.max(mine.length, theirs.length);
      for (let i = 0; i < n; i++) {
        const a = mine[i], b = theirs[i];
        const cell = (h: Hop | undefined) => (h ? `${h.address || "???"} | ${(h.loss * 100).toFixed(0)} % | ${h.avgMs === null ? "–" : h.avgMs.toFixed(3)}` : "– | – | –");
        rows.push(`| ${silent ? "silent" : "answering"} | ${ip} | ${i + 1} | ${cell(a)} | ${cell(b)} | ${i === 0 ? `${oursS.toFixed(2)} / ${mtrS.toFixed(2)}` : ""} |`);
      }
    }
  }
} finally {
  await bed.silenceTarget(false);
  await bed.remove();
}
console.log(`## Path trace: ProberMesh PathTracer vs mtr --report (${probes} probes per hop, ${intervalMs} ms apart), agent → r1 → r2 → target\n`);
console.log("| target | address | TTL | ProberMesh hop | loss | avg ms | mtr hop | loss | avg ms | wall s (ProberMesh / mtr) |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
process.exit(0);
