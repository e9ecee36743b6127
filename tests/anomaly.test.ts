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
  /** Packets sent to the pair over `ms`: every packet (raw) and weighted by the time each round samples. */
  const sentOver = async (ms: number) => {
    const a = await counters();
    await Bun.sleep(ms);
    const b = await counters();
    return { raw: b.raw - a.raw, weighted: b.weighted - a.weighted };
  };

  /** When each trace of `target` the agent logged was requested (a round failed), unix ms, oldest first. */
  const tracedAt = (target: string) => agent.output().split("\n").filter((l) => l.includes('"path traced"'))
    .map((l) => JSON.parse(l) as { requested: string; target: string }).filter((x) => x.target.endsWith(`/${target}`)).map((x) => Date.parse(x.requested));

  beforeAll(async () => {
    bed = await createPathBed("anom");
    const dir = mkdtempSync(`${tmpdir()}/pm-anomaly-`);
    writeFileSync(`${dir}/p.yaml`, `prober_configs:\n  - prober_type: icmp\n    region: far\n    icmp: {packet_count: 10, interval: 10ms, timeout: 300ms}\n    targets: [${bed.targetIp}, "${bed.targetIp6}"]\n`);
    start([SERVER_BIN, "-server.probe.file", `${dir}/p.yaml`, "-server.icmp.discovery", "static", "-server.rpc.listen.addr", "127.0.0.1:16200", "-server.http.listen.addr", WEB, "-server.aggregation.interval", "1s"], bed.inAgent);
    await waitFor("server ready", 10_000, async () => (await run([...bed.inAgent, "curl", "-sf", `http://${WEB}/-/ready`])).code === 0);
    agent = start([
      AGENT_BIN, "-region", "src", "-agent.ip", bed.agentIp, "-server.rpc.addr", "127.0.0.1:16200", "-log.format", "json",
      "-agent.probe.interval", "2s", "-agent.probe.error.interval", "300ms", "-agent.probe.error.clear", "2s",
      "-agent.trace.interval", "4s", "-agent.trace.probes", "4", "-agent.trace.probe.interval", "50ms", "-agent.trace.max.hops", "8",
    ], bed.inAgent);
    await waitFor("first results", 15_000, async () => (await sent()) > 0);
  }, 60_000);

  afterAll(async () => {
    await killAll();
    await bed?.remove();
  });

  test("a silent target is re-probed densely and traced; the trace shows r1, r2, then the loss", async () => {
    const healthy = await sentOver(4000); // two regular rounds of 10 packets per target
    expect(agent.output()).not.toContain("entered error state");
    await bed.silenceTarget(true);
    await waitFor("the agent's error-state log line", 15_000, () => agent.output().includes("target entered error state"));
    const failing = await sentOver(4000); // a lossy round takes ~0.4 s: re-probes every ~0.4 s
    console.log(`packets sent to the pair over 4 s: healthy ${healthy.raw} (weighted ${healthy.weighted.toFixed(1)}), in error state ${failing.raw} (weighted ${failing.weighted.toFixed(1)})`);
    expect(failing.raw).toBeGreaterThan(3 * healthy.raw);
    // Weighted by the time they sample, the re-probes cover the same 4 s as the regular rounds did.
    expect(failing.weighted).toBeLessThan(2 * healthy.weighted + 10);

    type Hop = { ttl: number; address: string; sent: number; received: number; rtt_mean_seconds: number | null };
    type Path = Record<string, unknown> & { target: string; hops: Hop[] };
    const paths = await waitFor("path traces for both targets", 20_000, async () => {
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

    const m = await waitFor("the error-state link in /metrics", 10_000, async () => {
      const m = await metrics();
      return Number(samples(m, "prober_icmp_error_state_links", PAIR)[0]?.value) === 2 ? m : undefined;
    });
    expect(Number(samples(m, "prober_server_receive_traces_total")[0]!.value)).toBeGreaterThanOrEqual(1);
    for (const s of samples(m, "prober_server_reject_traces_total")) expect(s.value).toBe("0");
    for (const s of samples(m, "prober_server_reject_points_total")) expect(s.value).toBe("0");
    expect(tracedAt(bed.targetIp).length).toBeGreaterThanOrEqual(1);
  }, 60_000);

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
      // One block per trace: a heading line, then the hop table.
      const blocks = await page.$$eval("#paths > div", (divs) => divs.map((d) => ({
        head: d.querySelector("p")!.textContent!,
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
    await waitFor("the agent's left-error-state log line", 15_000, () => agent.output().includes("target left error state"));
    const line = JSON.parse(agent.output().split("\n").find((l) => l.includes("target left error state"))!) as { reprobes: number; errorSeconds: number };
    expect(line.reprobes).toBeGreaterThan(3);
    // Each target traced again while the outage lasted (10+ s), but never twice within
    // -agent.trace.interval (4 s), however many re-probes failed in between.
    for (const target of [bed.targetIp, bed.targetIp6]) {
      const times = tracedAt(target);
      expect(times.length).toBeGreaterThanOrEqual(2);
      for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(4000);
    }
    await Bun.sleep(2000); // the last re-probes' results arrive with the next pushes (every 1 s)
    const after = await sentOver(4000);
    expect(after.raw).toBeLessThanOrEqual(60); // back to one 10-packet round per target per 2 s (plus one in flight each)
    const m = await waitFor("no error-state link", 10_000, async () => {
      const m = await metrics();
      return Number(samples(m, "prober_icmp_error_state_links", PAIR)[0]?.value) === 0 ? m : undefined;
    });
    expect(Number(samples(m, "prober_icmp_packet_loss_rate", PAIR)[0]!.value)).toBe(0);
  }, 40_000);
});
