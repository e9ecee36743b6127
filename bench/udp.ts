/**
 * UDP mesh cost per echo next to ICMP's (issue 19): one round to N loopback targets at once, 64
 * probes each 15 ms apart, ProberMesh's udp prober (16 flows, HMAC-tagged probes, against a real
 * responder process) and its ICMP engine (the kernel answers), measured in the same run. Prints a
 * markdown table: CPU µs per echo of the prober (and of the responder: ICMP's is the kernel's),
 * wall time, false loss, median of the targets' mean RTT on loopback.
 *
 *   npm run bench:udp            # N = 100, 1,000
 *   npm run bench:udp -- --quick # N = 100
 */
import { spawn } from "bun";
import { randomBytes } from "node:crypto";

const ROOT = new URL("..", import.meta.url).pathname;
const quick = process.argv.includes("--quick");
const COUNT = 64, INTERVAL_MS = 15, PORT = 43_099;

interface Measured { stdout: string; wallS: number; cpuS: number; rssMB: number }

async function measure(cmd: string[]): Promise<Measured> {
  const t0 = performance.now();
  const p = spawn(cmd, { stdout: "pipe", stderr: "inherit", cwd: ROOT });
  const [stdout, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited ${code}`);
  const ru = p.resourceUsage()!;
  return { stdout, wallS: (performance.now() - t0) / 1000, cpuS: Number(ru.cpuTime.total) / 1e6, rssMB: ru.maxRSS / 1e6 };
}

const key = randomBytes(32).toString("hex");
const rows = ["| N targets | kind | echoes | prober CPU µs/echo | responder CPU µs/echo | wall s | false loss | median RTT µs |", "|---|---|---|---|---|---|---|---|"];
for (const n of quick ? [100] : [100, 1000]) {
  const responder = spawn([process.execPath, `${ROOT}bench/udp_child.ts`, "responder", String(PORT), key], { stdout: "pipe", stderr: "inherit", cwd: ROOT });
  const reader = responder.stdout.getReader();
  await reader.read(); // "ready"
  const baseline = responder.resourceUsage();
  const udp = await measure([process.execPath, `${ROOT}bench/udp_child.ts`, "round", String(PORT), key, String(n), String(COUNT), String(INTERVAL_MS)]);
  responder.kill("SIGTERM");
  await responder.exited;
  const respCpuS = Number(responder.resourceUsage()!.cpuTime.total) / 1e6 - (baseline ? Number(baseline.cpuTime.total) / 1e6 : 0);
  const u = JSON.parse(udp.stdout) as { sent: number; received: number; rttsMedianSeconds: number | null; errors: string[] };
  const icmp = await measure([process.execPath, `${ROOT}bench/icmp_round.ts`, String(n), String(COUNT), String(INTERVAL_MS), "2000", "56"]);
  const i = JSON.parse(icmp.stdout) as { sent: number; received: number };
  const us = (s: number, echoes: number) => ((s * 1e6) / echoes).toFixed(1);
  rows.push(`| ${n} | udp (16 flows) | ${u.sent} | ${us(udp.cpuS, u.sent)} | ${us(respCpuS, u.sent)} | ${udp.wallS.toFixed(2)} | ${u.sent - u.received} | ${u.rttsMedianSeconds === null ? "-" : (u.rttsMedianSeconds * 1e6).toFixed(0)} |`);
  rows.push(`| ${n} | icmp | ${i.sent} | ${us(icmp.cpuS, i.sent)} | (kernel) | ${icmp.wallS.toFixed(2)} | ${i.sent - i.received} | - |`);
  if (u.errors.length) console.error(`udp errors: ${u.errors.join("; ")}`);
}
console.log("UDP mesh cost per echo next to ICMP's (one round, 64 echoes 15 ms apart per target, loopback; CPU = user + system of the whole process, start-up included)\n");
console.log(rows.join("\n"));
