/**
 * Agent benchmark: the compiled agent (dist/agent) probing N loopback ICMP targets (127.1.0.0 and
 * up, bench/targets.ts) with the default module (64 echoes 15 ms apart) every 15 s and pushing the
 * results to a compiled server (static discovery). Measures the agent's CPU cores and RSS over
 * whole intervals after one interval of warm-up (the highest RSS sampled every 250 ms), its
 * lifetime peak RSS (start-up included), and checks on the server's /metrics that every round
 * arrived (results accepted, none rejected, no loss). Needs root or ping sockets.
 *
 *   npm run bench:agent                 # 10,000 targets, 2 intervals measured
 *   bun run bench/agent.ts --targets 1000 --intervals 2
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { AGENT_BIN, SERVER_BIN, freePort, killAll, samples, scrape, start, waitFor } from "../tests/helpers/procs.ts";
import { loopbackTargets } from "./targets.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const targets = arg("targets", 10_000);
const intervals = arg("intervals", 2);
const INTERVAL_S = 15;

const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
};
const status = (pid: number, field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

const dir = mkdtempSync(`${tmpdir()}/pm-bench-agent-`);
writeFileSync(`${dir}/p.yaml`, `prober_configs:\n  - prober_type: icmp\n    region: lo\n    targets:\n${loopbackTargets(targets).map((t) => `      - ${t}`).join("\n")}\n`);
const [rpc, web] = [await freePort(), await freePort()];
try {
  start([SERVER_BIN, "-server.icmp.discovery", "static", "-server.probe.file", `${dir}/p.yaml`, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`]);
  await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
  const agent = start([AGENT_BIN, "-region", "src", "-agent.ip", "127.0.0.250", "-server.rpc.addr", `127.0.0.1:${rpc}`]);
  const pid = agent.proc.pid!;
  const metrics = () => scrape(`http://127.0.0.1:${web}/metrics`);
  const accepted = async () => Number(samples(await metrics(), "prober_server_receive_points_total", { prober_type: "icmp" })[0]?.value ?? 0);
  await Bun.sleep(INTERVAL_S * 1000 + 2000); // one interval of warm-up (every target's first round)
  const c0 = cpuSeconds(pid);
  const a0 = await accepted();
  const t0 = Date.now();
  let steadyMax = 0;
  while (Date.now() - t0 < intervals * INTERVAL_S * 1000) {
    steadyMax = Math.max(steadyMax, status(pid, "VmRSS"));
    await Bun.sleep(250);
  }
  const cores = (cpuSeconds(pid) - c0) / ((Date.now() - t0) / 1000);
  const a1 = await accepted();
  const m = await metrics();
  const sum = (n: string) => samples(m, n).reduce((x, s) => x + Number(s.value), 0);
  const sent = sum("prober_icmp_packets_sent_total"), received = sum("prober_icmp_packets_received_total");
  console.log(`## Agent binary: ${targets.toLocaleString("en")} ICMP targets x 64 echoes per 15 s, results pushed (${intervals} intervals measured after one of warm-up)\n`);
  console.log("| targets | agent CPU cores | agent RSS MB, highest while measured | agent peak RSS MB, start-up included | results accepted per interval | rejected | loss over the run |");
  console.log("|---|---|---|---|---|---|---|");
  console.log(`| ${targets.toLocaleString("en")} | ${cores.toFixed(3)} | ${steadyMax.toFixed(0)} | ${status(pid, "VmHWM").toFixed(0)} | ${((a1 - a0) / intervals).toFixed(0)} | ${sum("prober_server_reject_points_total")} | ${sent ? (1 - received / sent).toFixed(5) : "n/a"} |`);
} finally {
  await killAll();
}
process.exit(0);
