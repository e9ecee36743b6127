/**
 * Agent benchmark: the compiled agent (dist/agent) probing N loopback ICMP targets (127.1.0.0 and
 * up, bench/targets.ts) with the default module (64 echoes 15 ms apart) every 15 s and pushing the
 * results to a compiled server (static discovery). Measures the agent's CPU cores and RSS over
 * whole intervals after one interval of warm-up (the highest RSS sampled every 250 ms), its
 * lifetime peak RSS (start-up included), and checks on the server's /metrics that every round
 * arrived (results accepted, none rejected, no loss). Needs root or ping sockets.
 *
 * Outage mode (--outage-seconds S): after the warm-up and one interval measuring the steady RSS,
 * the server is killed (SIGKILL) right after a push landed, for S seconds, while the agent keeps
 * probing and queues its results (sampling its RSS every 250 ms); then the server starts again on
 * the same ports and the bench waits until the agent's first push after the restart has delivered
 * the backlog. Pushes happen on the agent's fixed 15 s grid, so the results queued are
 * targets x (push periods between the last push before the kill and the first one after the
 * restart); the row shows them next to what the restarted server received in that push.
 *
 *   npm run bench:agent                 # 10,000 targets, 2 intervals measured
 *   bun run bench/agent.ts --targets 1000 --intervals 2
 *   bun run bench/agent.ts --targets 10000 --outage-seconds 120
 *   bun run bench/agent.ts --targets 1000 --outage-seconds 30 --bin-dir /tmp/build   # other binaries
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { AGENT_BIN, SERVER_BIN, freePort, killAll, samples, scrape, start, waitFor, type Proc } from "../tests/helpers/procs.ts";
import { loopbackTargets } from "./targets.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const targets = arg("targets", 10_000);
const intervals = arg("intervals", 2);
const outageS = arg("outage-seconds", 0);
const binDir = process.argv.includes("--bin-dir") ? process.argv[process.argv.indexOf("--bin-dir") + 1]!.replace(/\/$/, "") : undefined;
const INTERVAL_S = 15;

const cpuSeconds = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
};
const status = (pid: number, field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

const dir = mkdtempSync(`${tmpdir()}/pm-bench-agent-`);
writeFileSync(`${dir}/p.yaml`, `prober_configs:\n  - prober_type: icmp\n    region: lo\n    targets:\n${loopbackTargets(targets).map((t) => `      - ${t}`).join("\n")}\n`);
const [rpc, web] = [await freePort(), await freePort()];
const serverCmd = [binDir ? `${binDir}/server` : SERVER_BIN, "-server.icmp.discovery", "static", "-server.probe.file", `${dir}/p.yaml`, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`];
const startServer = async () => {
  const p = start(serverCmd);
  await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
  return p;
};
try {
  const server = await startServer();
  const agent = start([binDir ? `${binDir}/agent` : AGENT_BIN, "-region", "src", "-agent.ip", "127.0.0.250", "-server.rpc.addr", `127.0.0.1:${rpc}`]);
  const pid = agent.proc.pid!;
  const metrics = () => scrape(`http://127.0.0.1:${web}/metrics`);
  const accepted = async () => Number(samples(await metrics(), "prober_server_receive_points_total", { prober_type: "icmp" })[0]?.value ?? 0);
  await Bun.sleep(INTERVAL_S * 1000 + 2000); // one interval of warm-up (every target's first round)
  if (outageS > 0) await outage(server, agent, pid, metrics, accepted);
  else {
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
  }
} finally {
  await killAll();
}
process.exit(0);

/** The outage run (--outage-seconds): prints one table row. */
async function outage(server: Proc, agent: Proc, pid: number, metrics: () => ReturnType<typeof scrape>, accepted: () => Promise<number>) {
  // Steady RSS over one interval, then kill the server just after a push landed (the outbox is
  // empty then, so the backlog is exactly what the agent probes while the server is away).
  let before = 0;
  const t0 = Date.now();
  let count = await accepted();
  let lastPushMs = 0;
  for (;;) {
    before = Math.max(before, status(pid, "VmRSS"));
    await Bun.sleep(250);
    const c = await accepted();
    if (c > count) lastPushMs = Date.now();
    count = c;
    // After an interval measured: 1 to 5 s after a push (its requests are all in, the next is 10 s away).
    const since = Date.now() - lastPushMs;
    if (Date.now() - t0 >= INTERVAL_S * 1000 && since >= 1000 && since < 5000) break;
  }
  await server.kill("SIGKILL");
  const killMs = Date.now();
  let during = 0;
  while (Date.now() - killMs < outageS * 1000) {
    during = Math.max(during, status(pid, "VmRSS"));
    await Bun.sleep(250);
  }
  // What the agent said it kept while the server was away (its last "push failed" line).
  const failed = agent.output().split("\n").filter((l) => l.includes("push failed")).at(-1);
  const queuedBytes = failed ? Number(/"queuedBytes":(\d+)/.exec(failed)?.[1] ?? NaN) : NaN;
  await startServer();
  const restartMs = Date.now();
  // The first push after the restart carries the whole backlog (one flush of the outbox).
  let firstPushMs = 0;
  await waitFor("the agent's first push after the restart", 4 * INTERVAL_S * 1000, async () => {
    during = Math.max(during, status(pid, "VmRSS"));
    if ((await accepted()) === 0) return false;
    firstPushMs ||= Date.now();
    return true;
  });
  const periods = Math.round((firstPushMs - lastPushMs) / (INTERVAL_S * 1000));
  const queued = targets * periods;
  // Until the flush is over: the counter reaches the backlog or stops moving for 3 s.
  let delivered = await accepted(), flatSince = Date.now();
  while (delivered < queued && Date.now() - flatSince < 3000) {
    await Bun.sleep(250);
    const c = await accepted();
    if (c !== delivered) flatSince = Date.now();
    delivered = c;
  }
  const m = await metrics();
  const late = Number(samples(m, "prober_server_late_points_total", { prober_type: "icmp" })[0]?.value ?? NaN);
  const dup = samples(m, "prober_server_reject_points_total", { prober_type: "icmp", reason: "duplicate" })[0];
  const mb = (x: number) => x.toFixed(0);
  console.log(`## Agent binary through a server outage: ${targets.toLocaleString("en")} ICMP targets x 64 echoes per 15 s, server killed for ${outageS} s\n`);
  console.log("| targets | outage s | agent RSS MB before (highest over an interval) | highest RSS MB during the outage | growth MB | results queued (targets x push periods without a push) | queued MB (agent log) | results delivered by the first push after restart | of them late (windows closed) | duplicates |");
  console.log("|---|---|---|---|---|---|---|---|---|---|");
  console.log(`| ${targets.toLocaleString("en")} | ${outageS} | ${mb(before)} | ${mb(during)} | ${mb(during - before)} | ${queued.toLocaleString("en")} (${periods} periods) | ${Number.isNaN(queuedBytes) ? "n/a" : (queuedBytes / 2 ** 20).toFixed(1)} | ${delivered.toLocaleString("en")} | ${Number.isNaN(late) ? "n/a" : late.toLocaleString("en")} | ${dup ? Number(dup.value).toLocaleString("en") : "n/a"} |`);
  console.log(`\nserver down ${((restartMs - killMs) / 1000).toFixed(1)} s; first push after the restart ${((firstPushMs - restartMs) / 1000).toFixed(1)} s after it`);
}
