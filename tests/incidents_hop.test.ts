/**
 * The localiser names a lossy router hop, through the binaries (issue 20: "a router hop drops ->
 * `hop` naming it, on a chain bed with traces"). The path bed (tests/helpers/pathbed.ts): agent ->
 * r1 -> r2 -> target; dist/server and dist/agent run in the agent namespace (the server on its
 * 127.0.0.1, read with `ip netns exec ... curl`), agent region `near`, one static icmp target
 * (the target namespace's address) in region `far`, short rounds, 1 s windows, path traces at most
 * every 2 s per target (10 probes per TTL, 50 ms apart).
 *
 * Fault: r1 drops 30 % of the packets it forwards (nftables forward chain, dropRandom). An echo
 * with TTL 1 ends at r1, which answers Time Exceeded itself (not forwarded: clean); TTL 2 (r2) and
 * the target cross r1's forwarding both ways and lose ~50 %. So the trace's loss begins after r1,
 * and the localiser's vote goes to r1: an incident `hop` with subject r1's address (PathBed.r1Ip),
 * evidence.hop.next = r2's address. No other incident appears at any poll; after the restore it
 * ends (listed in `recent` with `ended`, its prober_incident_active series gone). Prints the
 * detection time (fault -> incident active) and the time to end.
 *
 * Needs root, iproute2 and nftables; run `bun run scripts/build.ts` first.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { netnsAvailable } from "./helpers/netns.ts";
import { dropRandom } from "./helpers/nft.ts";
import { createPathBed, type PathBed } from "./helpers/pathbed.ts";
import { AGENT_BIN, SERVER_BIN, killAll, parseExposition, run, samples, skipReason, start, waitFor, type Proc } from "./helpers/procs.ts";

const missing = !(await netnsAvailable()) ? "needs root and iproute2 (ip netns)" : !Bun.which("nft") ? "needs nft (apt-get install nftables)" : "";
if (missing) skipReason(`tests/incidents_hop.test.ts ${missing}: it builds a line of namespaces with two routers and makes one drop`);

const WEB = "127.0.0.1:16221";
/** Fault -> incident active, and restore -> ended, at most (ms). */
const STEP_MS = 40_000;
/** How long the incident is watched holding before the restore, ms. */
const HOLD_MS = 3000;

type Incident = {
  id: string; scope: string; subject: string; regions: string[]; address: string | null; started: string; ended: string | null; windows: number; summary: string;
  evidence: { lossy_links: number; links: number; loss_ratio: number; confidence: number; direction: string; kinds: string[]; cells: { source_region: string; target_region: string }[]; hop: { votes: number; traced_links: number; ttl: number; next: string } | null; ambiguity: string | null };
};
type Incidents = { window_end: string | null; active: Incident[]; recent: Incident[]; unexplained: { lossy_links: number; links: number } | null };

describe.skipIf(!!missing)("incidents: a router that drops what it forwards is named as the hop", () => {
  let bed: PathBed;
  let agent: Proc;
  const get = async (path: string) => {
    const r = await run([...bed.inAgent, "curl", "-sf", `http://${WEB}${path}`]);
    if (r.code !== 0) throw new Error(`GET ${path}: curl exit ${r.code}`);
    return r.stdout;
  };
  const incidents = async () => JSON.parse(await get("/api/v1/incidents")) as Incidents;
  const metrics = async () => parseExposition(await get("/metrics"));
  const active = (m: Map<string, { labels: Record<string, string>; value: string }[]>, scope: string, subject: string) => samples(m, "prober_incident_active", { scope, subject })[0]?.value;
  const name = (i: Pick<Incident, "scope" | "subject">) => `${i.scope} ${i.subject}`;

  beforeAll(async () => {
    bed = await createPathBed("ihop");
    const dir = mkdtempSync(`${tmpdir()}/pm-ihop-`);
    writeFileSync(`${dir}/p.yaml`, `prober_configs:\n  - prober_type: icmp\n    region: far\n    icmp: {packet_count: 10, interval: 20ms, timeout: 500ms}\n    targets: [${bed.targetIp}]\n`);
    start([SERVER_BIN, "-server.probe.file", `${dir}/p.yaml`, "-server.icmp.discovery", "static", "-server.rpc.listen.addr", "127.0.0.1:16220", "-server.http.listen.addr", WEB, "-server.aggregation.interval", "1s", "-log.format", "json"], bed.inAgent);
    await waitFor("server ready", 30_000, async () => (await run([...bed.inAgent, "curl", "-sf", `http://${WEB}/-/ready`])).code === 0);
    agent = start([
      AGENT_BIN, "-region", "near", "-agent.ip", bed.agentIp, "-server.rpc.addr", "127.0.0.1:16220", "-log.format", "json",
      "-agent.probe.interval", "1s", "-agent.sync.interval", "500ms",
      "-agent.trace.interval", "2s", "-agent.trace.probes", "10", "-agent.trace.probe.interval", "50ms", "-agent.trace.max.hops", "8",
    ], bed.inAgent);
  }, 60_000);

  afterAll(async () => {
    await killAll();
    await bed?.remove();
  });

  test("r1 drops 30 % of what it forwards: hop <r1>, next r2; restored: it ends", async () => {
    const t0 = Date.now();
    await waitFor("near -> far published at loss 0, the localiser running", 30_000, async () => {
      const m = await metrics();
      return samples(m, "prober_icmp_packet_loss_rate", { source_region: "near", target_region: "far" })[0]?.value === "0" && ((await incidents()).unexplained?.links ?? 0) > 0;
    });
    const healthy = await incidents();
    console.log(`near -> far clean ${Date.now() - t0} ms after start; ${healthy.unexplained?.links} link(s) considered`);
    expect(healthy.active).toEqual([]);
    expect(healthy.recent).toEqual([]);

    // Any other incident, once each (first seen, latest state): none may appear.
    const other = new Map<string, string>();
    const others = (inc: Incidents, from: number, when: string) => {
      for (const i of [...inc.active, ...inc.recent]) {
        if (i.scope === "hop" && i.subject === bed.r1Ip) continue;
        const first = other.get(i.id)?.split(";")[0] ?? `first seen ${Date.now() - from} ms ${when}`;
        other.set(i.id, `${first}; ${name(i)} started ${i.started}, ${i.ended ? `ended ${i.ended}` : "active"}: ${i.summary}; evidence ${JSON.stringify(i.evidence)}`);
      }
    };
    const why = async (e: unknown) => new Error(`${(e as Error).message}\nother incidents: ${JSON.stringify([...other.values()], null, 1)}\n/api/v1/incidents: ${await get("/api/v1/incidents").catch(String)}\n/api/v1/paths: ${await get("/api/v1/paths").catch(String)}`);

    const heal = await dropRandom(bed.r1, "forward", 30);
    const faultAt = Date.now();
    let inc: Incident;
    try {
      inc = await waitFor(`incident hop ${bed.r1Ip} active`, STEP_MS, async () => {
        const j = await incidents();
        others(j, faultAt, "after the fault");
        return j.active.find((i) => i.scope === "hop" && i.subject === bed.r1Ip);
      }).catch(async (e) => { throw await why(e); });
      console.log(`hop ${bed.r1Ip} active ${Date.now() - faultAt} ms after the fault (started ${inc.started}, ${inc.windows} windows): ${inc.summary}`);
      console.log(`evidence ${JSON.stringify(inc.evidence)}`);
      // The traces it rests on (the server keeps the latest 3): r1 clean at TTL 1, loss from r2 on.
      const paths = (JSON.parse(await get("/api/v1/paths?source_region=near&target_region=far")) as { paths: { target: string; time: string; hops: { ttl: number; address: string; sent: number; received: number }[] }[] }).paths;
      for (const x of paths) console.log(`trace ${x.time}: ${x.hops.map((h) => `${h.ttl} ${h.address || "???"} ${h.received}/${h.sent}`).join(", ")}`);
      const p = paths.find((x) => x.target === bed.targetIp)!;
      expect(inc.address).toBe(bed.r1Ip);
      expect(inc.regions).toEqual(["far", "near"]);
      expect(inc.evidence.hop).toMatchObject({ ttl: 1, next: bed.r2Ip });
      expect(inc.evidence.hop!.votes).toBeGreaterThanOrEqual(1);
      expect(inc.evidence.cells).toEqual([{ source_region: "near", target_region: "far" }]);
      expect(inc.evidence.ambiguity).toBeNull();
      await waitFor(`prober_incident_active{hop, ${bed.r1Ip}} = 1`, 5000, async () => active(await metrics(), "hop", bed.r1Ip) === "1");
      // It holds while the fault lasts (the trace is retaken at most every 2 s; the votes stand).
      const holdUntil = Date.now() + HOLD_MS;
      while (Date.now() < holdUntil) {
        await Bun.sleep(500);
        const j = await incidents();
        others(j, faultAt, "during the fault");
        if (!j.active.some((i) => i.id === inc.id)) other.set(`${inc.id} gone`, `${Date.now() - faultAt} ms after the fault: ${inc.id} no longer active`);
      }
      expect(p.hops[0]).toMatchObject({ ttl: 1, address: bed.r1Ip, received: p.hops[0]!.sent });
      expect(p.hops[1]).toMatchObject({ ttl: 2, address: bed.r2Ip });
    } finally {
      await heal();
    }
    const healAt = Date.now();
    const ended = await waitFor(`incident hop ${bed.r1Ip} ended`, STEP_MS, async () => {
      const j = await incidents();
      others(j, healAt, "after the restore");
      const done = j.recent.find((i) => i.id === inc.id && i.ended !== null);
      return done && !j.active.length && active(await metrics(), "hop", bed.r1Ip) === undefined ? done : undefined;
    }).catch(async (e) => { throw await why(e); });
    console.log(`ended ${Date.now() - healAt} ms after the restore (ended ${ended.ended}, ${ended.windows} windows)`);
    expect(Number(samples(await metrics(), "prober_incidents_total", { scope: "hop" })[0]?.value)).toBe(1);
    expect([...other.values()]).toEqual([]);
    expect(agent.proc.exitCode).toBeNull();
  }, 2 * STEP_MS + HOLD_MS + 40_000);
});
