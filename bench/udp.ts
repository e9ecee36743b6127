/**
 * UDP mesh cost per echo next to ICMP's (issue 19): one round to N loopback targets at once, 64
 * probes each 15 ms apart, ProberMesh's udp prober (16 flows, HMAC-tagged probes, against a real
 * responder process) and its ICMP engine (the kernel answers), measured in the same run. Prints a
 * markdown table: CPU µs per echo of the prober (and of the responder: ICMP's is the kernel's),
 * wall time, false loss, median of the targets' mean RTT on loopback. Then the responder's
 * per-request cost of the reflector count (lib/probes/udp/reflector.ts) in-process, next to the
 * HMAC every request costs anyway.
 *
 *   npm run bench:udp            # N = 100, 1,000
 *   npm run bench:udp -- --quick # N = 100
 */
import { spawn } from "bun";
import { createHmac, randomBytes } from "node:crypto";
import { REFLECTOR_MAX_FLOWS, ReflectorCounts } from "../lib/probes/udp/reflector.ts";

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

/** ns per ReflectorCounts.next() over `flows` flows taken round-robin (beyond REFLECTOR_MAX_FLOWS / 2 none is kept). */
function reflectorNs(flows: number, calls: number): number {
  const r = new ReflectorCounts();
  const ips = Array.from({ length: Math.min(flows, 65_536) }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  const run = (n: number) => {
    for (let i = 0; i < n; i++) r.next(ips[i % ips.length]!, 40100 + Math.floor(i / ips.length) % (flows / ips.length), 0x12345678, 0x9abcdef0);
  };
  run(flows); // warm: every flow seen once
  const t0 = performance.now();
  run(calls);
  return ((performance.now() - t0) * 1e6) / calls;
}
const hmacKey = randomBytes(32), msg = randomBytes(40);
const t0 = performance.now();
for (let i = 0; i < 200_000; i++) createHmac("sha256", hmacKey).update(msg).digest();
const hmacNs = ((performance.now() - t0) * 1e6) / 200_000;
console.log("\nReflector count per request (in-process, ns; the HMAC every verified request costs is the yardstick)\n");
console.log("| flows | ns per request |\n|---|---|");
for (const f of [16, 8_000, REFLECTOR_MAX_FLOWS / 2, 2 * REFLECTOR_MAX_FLOWS]) {
  const note = f > REFLECTOR_MAX_FLOWS / 2 ? " (beyond a generation: every flow forgotten before it comes back)" : "";
  console.log(`| ${f.toLocaleString("en")}${note} | ${reflectorNs(f, 2_000_000).toFixed(0)} |`);
}
console.log(`| (one HMAC-SHA256 tag) | ${hmacNs.toFixed(0)} |`);
