/**
 * Adaptive re-probing and the path trace on anomaly, end to end through the compiled binaries:
 * server and agent in the agent namespace of the path bed (agent → r1 → r2 → target,
 * tests/helpers/pathbed.ts), the agent on unprivileged ping sockets (IP_RECVERR for the trace).
 * An IPv4 and an IPv6 target stop answering: the pair's sent-packet rate rises, the agent says the target
 * entered error state, /api/v1/paths lists r1 and r2 in TTL order with the loss starting after r2,
 * /metrics shows the error-state link and the accepted trace, and the web console (headless
 * Chromium, run inside the namespace) shows the path on the pair's drill-down. Then the target
 * answers again and the agent says it left error state.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import puppeteer from "puppeteer-core";
import { tmpdir } from "node:os";
import { createPathBed, type PathBed } from "./helpers/pathbed.ts";
import { netnsAvailable } from "./helpers/netns.ts";
import { AGENT_BIN, SERVER_BIN, killAll, parseExposition, run, samples, skipReason, start, waitFor, type Proc } from "./helpers/procs.ts";

const available = await netnsAvailable();
if (!available) skipReason("anomaly.test.ts needs root and iproute2: it builds a line of namespaces with two routers");

const WEB = "127.0.0.1:16201";
const chromium = Bun.which("chromium");

/** The page's `document`, as the callbacks below (run inside Chromium) use it. */
declare const document: { querySelectorAll(selector: string): { length: number } };
const PAIR = { source_region: "src", target_region: "far" };

describe.skipIf(!available)("anomaly: error state and path trace through the binaries", () => {
  let bed: PathBed;
  let agent: Proc;
  const get = async (path: string) => (await run([...bed.inAgent, "curl", "-sf", `http://${WEB}${path}`])).stdout;
  const metrics = async () => parseExposition(await get("/metrics"));
  const counters = async () => {
    const m = await metrics();
    const v = (name: string) => Number(samples(m, name, PAIR)[0]?.value ?? 0);
    return { raw: v("prober_icmp_packets_sent_total"), weighted: v("prober_icmp_weighted_packets_sent_total") };
  };
  const sent = async () => (await counters()).raw;
  /**
   * Packets sent to the pair over about `ms`: every packet (raw) and weighted by the time each
   * round samples, with the time that really passed between the two scrapes (a loaded machine
   * stretches the sleep), so callers compare rates, not counts over an assumed time.
   */
  const sentOver = async (ms: number) => {
    const a = await counters();
    const t0 = performance.now();
    await Bun.sleep(ms);
    const b = await counters();
    const seconds = (performance.now() - t0) / 1000;
    return { raw: b.raw - a.raw, weighted: b.weighted - a.weighted, seconds };
  };
  /**
   * waitFor, but a gone agent (crashed or killed) fails at once with its last output instead of
   * running into the timeout.
   */
  const untilAgent = async <T>(what: string, timeoutMs: number, check: () => Promise<T | undefined | false> | T | undefined | false): Promise<T> => {
    const gone = () => agent.proc.exitCode !== null || agent.proc.signalCode !== null;
    const v = await waitFor<T | "agent gone">(what, timeoutMs, async () => (gone() ? "agent gone" : await check()));
    if (v === "agent gone") throw new Error(`the agent exited (code ${agent.proc.exitCode}, signal ${agent.proc.signalCode}) while waiting for ${what}; its last output:\n${agent.output().slice(-3000)}`);
    return v as T;
  };
  /** The agent's JSON log lines with `msg`, for either target (`target` ends with "/<ip>"). */
  const logLines = <T>(msg: string) => agent.output().split("\n").filter((l) => l.includes(`"msg":"${msg}`)).map((l) => JSON.parse(l) as T & { target: string });
  const forBoth = <T extends { target: string }>(lines: T[]) => [bed.targetIp, bed.targetIp6].every((ip) => lines.some((x) => x.target.endsWith(`/${ip}`)));

  /** When each trace of `target` the agent logged was requested (a round failed), unix ms, oldest first. */
  const tracedAt = (target: string) => agent.output().split("\n").filter((l) => l.includes('"path traced"'))
    .map((l) => JSON.parse(l) as { requested: string; target: string }).filter((x) => x.target.endsWith(`/${target}`)).map((x) => Date.parse(x.requested));

  beforeAll(async () => {
    bed = await createPathBed("anom");
    const dir = mkdtempSync(`${tmpdir()}/pm-anomaly-`);
    writeFileSync(`${dir}/p.yaml`, `prober_configs:\n  - prober_type: icmp\n    region: far\n    icmp: {packet_count: 10, interval: 10ms, timeout: 300ms}\n    targets: [${bed.targetIp}, "${bed.targetIp6}"]\n`);
    start([SERVER_BIN, "-server.probe.file", `${dir}/p.yaml`, "-server.icmp.discovery", "static", "-server.rpc.listen.addr", "127.0.0.1:16200", "-server.http.listen.addr", WEB, "-server.aggregation.interval", "1s"], bed.inAgent);
    await waitFor("server ready", 30_000, async () => (await run([...bed.inAgent, "curl", "-sf", `http://${WEB}/-/ready`])).code === 0);
    agent = start([
      AGENT_BIN, "-region", "src", "-agent.ip", bed.agentIp, "-server.rpc.addr", "127.0.0.1:16200", "-log.format", "json",
      "-agent.probe.interval", "2s", "-agent.probe.error.interval", "300ms", "-agent.probe.error.clear", "2s",
      "-agent.trace.interval", "4s", "-agent.trace.probes", "4", "-agent.trace.probe.interval", "50ms", "-agent.trace.max.hops", "8",
    ], bed.inAgent);
    await waitFor("first results", 30_000, async () => (await sent()) > 0);
  }, 120_000);

  afterAll(async () => {
    await killAll();
    await bed?.remove();
  });

  test("a silent target is re-probed densely and traced; the trace shows r1, r2, then the loss", async () => {
    const healthy = await sentOver(4000); // two regular rounds of 10 packets per target
    expect(agent.output()).not.toContain("entered error state");
    await bed.silenceTarget(true);
    await untilAgent("both targets' error-state log lines", 30_000, () => forBoth(logLines("target entered error state")));
    const failing = await sentOver(4000); // a lossy round takes ~0.4 s: re-probes every ~0.4 s
    const rate = (x: { raw: number; weighted: number; seconds: number }) => ({ raw: x.raw / x.seconds, weighted: x.weighted / x.seconds });
    const [h, f] = [rate(healthy), rate(failing)];
    console.log(`packets/s sent to the pair: healthy ${h.raw.toFixed(1)} (weighted ${h.weighted.toFixed(1)}) over ${healthy.seconds.toFixed(1)} s, in error state ${f.raw.toFixed(1)} (weighted ${f.weighted.toFixed(1)}) over ${failing.seconds.toFixed(1)} s`);
    // Regular rounds: 2 targets x 10 packets per 2 s = 10/s; re-probes every ~0.4 s: ~50/s.
    expect(f.raw).toBeGreaterThan(3 * h.raw);
    // Weighted by the time they sample, the re-probes cover the same time as the regular rounds did.
    expect(f.weighted).toBeLessThan(2 * h.weighted + 2.5);

    type Hop = { ttl: number; address: string; sent: number; received: number; rtt_mean_seconds: number | null };
    type Path = Record<string, unknown> & { target: string; hops: Hop[] };
    const paths = await untilAgent("path traces for both targets", 30_000, async () => {
      const body = JSON.parse(await get(`/api/v1/paths?source_region=src&target_region=far`)) as { paths: Path[] };
      const latest = [bed.targetIp, bed.targetIp6].map((t) => body.paths.find((p) => p.target === t));
      return latest.every(Boolean) ? (latest as Path[]) : undefined;
    });
    for (const [p, target, r1, r2] of [[paths[0]!, bed.targetIp, bed.r1Ip, bed.r2Ip], [paths[1]!, bed.targetIp6, bed.r1Ip6, bed.r2Ip6]] as const) {
      expect([p.source_region, p.target_region, p.agent_ip, p.target, p.reason, p.reached, p.error]).toEqual(["src", "far", bed.agentIp, target, "error_state", false, ""]);
      expect(p.hops.map((h) => [h.ttl, h.address])).toEqual([[1, r1], [2, r2], [3, ""]]);
      expect(p.hops.map((h) => [h.sent, h.received])).toEqual([[4, 4], [4, 4], [4, 0]]);
      expect(p.hops[0]!.rtt_mean_seconds).toBeGreaterThan(0);
      expect(p.hops[2]!.rtt_mean_seconds).toBeNull();
    }
    // Other filters: another source region has none; no filter lists it too.
    expect(JSON.parse(await get(`/api/v1/paths?source_region=elsewhere`)).paths).toEqual([]);
    expect(JSON.parse(await get(`/api/v1/paths`)).paths.length).toBeGreaterThan(0);

    const m = await untilAgent("the error-state links in /metrics", 30_000, async () => {
      const m = await metrics();
      return Number(samples(m, "prober_icmp_error_state_links", PAIR)[0]?.value) === 2 ? m : undefined;
    });
    expect(Number(samples(m, "prober_server_receive_traces_total")[0]!.value)).toBeGreaterThanOrEqual(1);
    for (const s of samples(m, "prober_server_reject_traces_total")) expect(s.value).toBe("0");
    for (const s of samples(m, "prober_server_reject_points_total")) expect(s.value).toBe("0");
    expect(tracedAt(bed.targetIp).length).toBeGreaterThanOrEqual(1);
  }, 120_000);

  test.skipIf(chromium === null)("the console's pair drill-down shows the trace hop by hop and the link in error state", async () => {
    // Chromium runs inside the agent namespace (where the server listens), driven over a pipe.
    const wrapper = `${mkdtempSync(`${tmpdir()}/pm-anomaly-ui-`)}/chromium`;
    writeFileSync(wrapper, `#!/bin/sh\nexec ${bed.inAgent.join(" ")} ${chromium} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const browser = await puppeteer.launch({ executablePath: wrapper, pipe: true, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
    try {
      const page = await browser.newPage();
      await page.goto(`http://${WEB}/`, { waitUntil: "networkidle0" });
      // The cell says the pair has a link in error state (and loss, in red).
      await page.waitForSelector('#heatmap td.cell.erring.bad[data-source="src"][data-target="far"]', { timeout: 15_000 });
      expect(await page.$eval('#heatmap td.cell[data-source="src"][data-target="far"]', (td) => td.getAttribute("title"))).toContain("2 link(s) in error state");
      await page.click('#heatmap td.cell[data-source="src"][data-target="far"]');
      await page.waitForFunction(() => document.querySelectorAll("#paths table.path tr").length > 1, { timeout: 15_000 });
      // One block per trace: its title and heading lines, then the hop table.
      const blocks = await page.$$eval("#paths div.trace", (divs) => divs.map((d) => ({
        head: [...d.querySelectorAll("p")].map((p) => p.textContent).join(" "),
        hops: [...d.querySelectorAll("table.path tr:not(:first-child)")].map((tr) => [...tr.querySelectorAll("td")].slice(0, 5).map((td) => td.textContent)),
      })));
      for (const [target, r1, r2] of [[bed.targetIp, bed.r1Ip, bed.r2Ip], [bed.targetIp6, bed.r1Ip6, bed.r2Ip6]]) {
        const b = blocks.find((x) => x.head.includes(` → ${target} `))!;
        expect(b.head).toContain("did not reach the target");
        expect(b.hops).toEqual([["1", r1, "0.0 %", "4", "4"], ["2", r2, "0.0 %", "4", "4"], ["3", "???", "100.0 %", "4", "0"]]);
      }
      const state = await page.$$eval("#links tr:not(:first-child)", (trs) => trs.map((tr) => tr.lastElementChild!.textContent));
      expect(state).toEqual(["error state", "error state"]);
    } finally {
      await browser.close();
    }
  }, 60_000);

  test("when the target answers again, a clean clear period ends error state and the rate falls back", async () => {
    await bed.silenceTarget(false);
    // Each target leaves after its re-probes were clean for -agent.probe.error.clear (2 s): wait
    // for both log lines, however long a loaded machine takes to get there.
    const left = await untilAgent("both targets' left-error-state log lines", 60_000, () => {
      const lines = logLines<{ reprobes: number; errorSeconds: number }>("target left error state");
      return forBoth(lines) ? lines : undefined;
    });
    for (const line of left) expect(line.reprobes).toBeGreaterThan(3);
    // Each target traced again while the outage lasted (10+ s), but never twice within
    // -agent.trace.interval (4 s), however many re-probes failed in between.
    for (const target of [bed.targetIp, bed.targetIp6]) {
      const times = tracedAt(target);
      expect(times.length).toBeGreaterThanOrEqual(2);
      for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(4000);
    }
    // A published window without error-state links comes after the last re-probes' results were
    // pushed (every 1 s) and filed: from then on the counters grow by regular rounds only.
    const m = await untilAgent("no error-state link", 30_000, async () => {
      const m = await metrics();
      return Number(samples(m, "prober_icmp_error_state_links", PAIR)[0]?.value) === 0 ? m : undefined;
    });
    expect(Number(samples(m, "prober_icmp_packet_loss_rate", PAIR)[0]!.value)).toBe(0);
    const after = await sentOver(4000);
    // Back to one 10-packet round per target per 2 s over the time that really passed, plus two
    // rounds per target for a round in flight and pushes on either side of the scrapes (re-probing
    // would be ~50 packets/s: about 200 in 4 s against this bound of 80-100).
    const bound = 2 * 10 * (Math.ceil(after.seconds / 2) + 2);
    console.log(`packets sent to the pair after error state: ${after.raw} in ${after.seconds.toFixed(1)} s (bound ${bound})`);
    expect(after.raw).toBeGreaterThan(0);
    expect(after.raw).toBeLessThanOrEqual(bound);
  }, 120_000);
});
