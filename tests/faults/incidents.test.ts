/**
 * The localiser through the binaries (issue 20, "Tests through the binaries"): the mesh fault bed
 * (tests/helpers/meshbed.ts) with three regions of two agents (r1: a1 a2, r2: b1 b2, r3: c1 c2),
 * dist/server in core with 1 s windows, dynamic discovery (the agents probe each other by icmp,
 * their udp responders and their tcp listeners), short ICMP and udp rounds (meshProbeFile,
 * shortUdp). One bridge and no routers: every trace is one hop, so only the agent and region steps
 * can explain anything.
 * Faults are nftables rules that drop 30 % of chosen packets at random (dropRandom, nft.ts):
 *
 *   a. no fault for PM_INCIDENT_SOAK_S seconds (default 10; the 0.7 note records a 300 s soak): no incident, ever (active and recent
 *      empty, prober_incidents_total 0 for every scope, at every poll);
 *   b. a1 drops 30 % of its egress: `agent r1/<a1>`, and at no poll a region_* incident naming r1;
 *   c. b1 and b2 drop 30 % of their ingress: one `region_ingress r2` (the udp reflector counts say
 *      the loss is on the way in), not one incident per pair or per agent;
 *   d. traffic between r1 and r3 only drops 30 % each way (rules on a1 and a2 for c1 and c2):
 *      `region_pair r1<->r3`.
 *
 * In b-d no other incident appears at any poll; after the restore the incident ends (listed in
 * `recent` with `ended`, its prober_incident_active series gone). Each step prints the detection
 * time (fault -> incident active) and the time to end (restore -> ended).
 * Needs root, iproute2 and nftables; run `bun run scripts/build.ts` first.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { LOCALISER_WORKER_STARTED } from "../../lib/server/incidents.ts";
import { SHORT_ICMP, bedAgent, bedServer, createMeshBed, faultBedMissing, gauge, logLines, meshProbeFile, type BedServer, type MeshBed } from "../helpers/meshbed.ts";
import { dropRandom, restore } from "../helpers/nft.ts";
import { killAll, samples, skipReason, waitFor, type Sample } from "../helpers/procs.ts";

const missing = await faultBedMissing();
if (missing) skipReason(`tests/faults/incidents.test.ts ${missing}`);

const REGIONS = { a1: "r1", a2: "r1", b1: "r2", b2: "r2", c1: "r3", c2: "r3" } as const;
/**
 * Short udp rounds for 1 s windows, as SHORT_ICMP: 32 probes over the 16 flows 10 ms apart, 500 ms
 * timeout (under 0.9 s in all). The default round (64 probes, 5 s timeout) outlasts the 1 s
 * interval as soon as probes are lost: rounds are skipped, and windows without a udp result leave
 * the links without one-way counts. One block per region: it is the module its agents are probed
 * with as mesh targets (docs/configuration.md); it lists the responder (default port 6010) of the
 * region's first agent, which dynamic discovery adds anyway (a block needs a target).
 */
function shortUdp(bed: MeshBed): string {
  const first = new Map<string, string>();
  for (const h of bed.hosts) if (!first.has(REGIONS[h.name as keyof typeof REGIONS])) first.set(REGIONS[h.name as keyof typeof REGIONS], h.ip);
  return [...first].map(([r, ip]) => `  - prober_type: udp\n    region: ${r}\n    udp: {packet_count: 32, interval: 10ms, timeout: 500ms}\n    targets: ["${ip}:6010"]\n`).join("");
}
/** How long step a watches the healthy mesh, s (a manual soak sets more). */
const SOAK_S = Number(process.env.PM_INCIDENT_SOAK_S ?? 10);
/** Fault -> incident active, and restore -> incident ended, at most (ms). */
const STEP_MS = 40_000;
const POLL_MS = 500;
/** How long a step watches its incident hold before the restore, ms. */
const HOLD_MS = 2000;

type Incident = {
  id: string; scope: string; subject: string; regions: string[]; address: string | null; started: string; last_seen: string; ended: string | null; windows: number; summary: string;
  evidence: {
    lossy_links: number; links: number; loss_ratio: number; confidence: number; direction: string; egress_loss_ratio: number | null; ingress_loss_ratio: number | null;
    kinds: string[]; cells: { source_region: string; target_region: string }[]; role: string | null;
  };
};
type Incidents = { window_end: string | null; active: Incident[]; recent: Incident[]; unexplained: { lossy_links: number; links: number; widespread: boolean } | null };
type Metrics = Map<string, Sample[]>;

const name = (i: Pick<Incident, "scope" | "subject">) => `${i.scope} ${i.subject}`;

describe.skipIf(!!missing)("incidents through the binaries: agent, region_ingress, region_pair, and none without a fault", () => {
  let bed: MeshBed;
  let server: BedServer;
  const ip = (h: keyof typeof REGIONS) => bed.host(h).ip;

  beforeAll(async () => {
    bed = await createMeshBed("inc", Object.keys(REGIONS));
    server = bedServer(bed, 6000, 6001, ["-server.probe.file", meshProbeFile(bed, REGIONS, SHORT_ICMP, shortUdp(bed))]);
    await server.start();
    for (const h of bed.hosts) bedAgent(bed, h, REGIONS[h.name as keyof typeof REGIONS], server.rpcAddr);
  }, 60_000);
  afterAll(async () => {
    await killAll();
    await bed?.remove();
  });

  const poll = async () => ({ inc: await server.json<Incidents>("/api/v1/incidents"), m: await server.metrics() });
  const opened = (m: Metrics) => samples(m, "prober_incidents_total").map((s) => `${s.labels.scope}=${s.value}`);

  /** Every icmp and udp pair between the three regions published at loss 0. */
  const meshClean = async () => {
    const m = await server.metrics();
    const kinds = ["prober_icmp_packet_loss_rate", "prober_udp_packet_loss_rate"];
    const regions = ["r1", "r2", "r3"];
    const pairs = regions.flatMap((s) => regions.filter((t) => t !== s).map((t) => [s, t] as const));
    return pairs.every(([s, t]) => kinds.every((k) => gauge(m, k, { source_region: s, target_region: t }) === 0));
  };

  /**
   * Applies a fault, waits for `expected` (scope and subject) to become active, checks `evidence`,
   * restores, and waits for it to end. At every poll, any other incident active or newly ended is
   * a failure.
   */
  async function step(label: string, expected: { scope: string; subject: string }, fault: () => Promise<void>, heal: () => Promise<void>, check: (i: Incident) => void) {
    // A clean start: every pair at loss 0 and no incident active (an earlier step's ended).
    const start = await waitFor("the mesh clean and no incident active before the fault", STEP_MS, async () => {
      const inc = await server.json<Incidents>("/api/v1/incidents");
      return inc.active.length === 0 && (await meshClean()) ? inc : undefined;
    });
    const before = new Set(start.recent.map((i) => i.id));
    const wrong: string[] = [];
    // Other incidents, once each (first seen, latest state): none may appear.
    const other = new Map<string, string>();
    const others = (inc: Incidents, t0: number, when: string) => {
      for (const i of [...inc.active, ...inc.recent.filter((x) => !before.has(x.id))]) {
        if (i.scope === expected.scope && i.subject === expected.subject) continue;
        const e = i.evidence;
        const first = other.get(i.id)?.split(";")[0] ?? `first seen ${Date.now() - t0} ms ${when}`;
        other.set(i.id, `${first}; ${name(i)} started ${i.started}, ${i.ended ? `ended ${i.ended}` : "active"}, ${i.windows} windows: ${i.summary} (egress ${e.egress_loss_ratio}, ingress ${e.ingress_loss_ratio})`);
      }
    };
    const fail = (e: unknown) => new Error(`${(e as Error).message}\nother incidents: ${JSON.stringify([...other.values()], null, 1)}`);
    await fault();
    const faultAt = Date.now();
    let id = "";
    try {
      const seen = await waitFor(`${label}: incident ${name(expected)} active`, STEP_MS, async () => {
        const { inc } = await poll();
        others(inc, faultAt, "after the fault");
        return inc.active.find((x) => x.scope === expected.scope && x.subject === expected.subject);
      }).catch((e) => { throw fail(e); });
      const detected = Date.now() - faultAt;
      id = seen.id;
      console.log(`${label}: ${name(expected)} active ${detected} ms after the fault (started ${seen.started}, ${seen.windows} windows): ${seen.summary}`);
      // It holds while the fault lasts, alone, and the gauge says so; its evidence is read at the
      // end, once every link's horizon lies inside the fault.
      let last = seen;
      const until = Date.now() + HOLD_MS;
      while (Date.now() < until) {
        await Bun.sleep(POLL_MS);
        const { inc, m } = await poll();
        others(inc, faultAt, "during the fault");
        const i = inc.active.find((x) => x.id === seen.id);
        if (!i) wrong.push(`${Date.now() - faultAt} ms during the fault: ${seen.id} not active`);
        else last = i;
        if (gauge(m, "prober_incident_active", expected) !== 1) wrong.push(`${Date.now() - faultAt} ms during the fault: prober_incident_active{${name(expected)}} = ${gauge(m, "prober_incident_active", expected)}`);
      }
      console.log(`${label}: after ${last.windows} windows: ${last.summary}; evidence ${JSON.stringify(last.evidence)}`);
      check(last);
    } finally {
      await heal();
    }
    const healAt = Date.now();
    const ended = await waitFor(`${label}: incident ${id} ended`, STEP_MS, async () => {
      const { inc, m } = await poll();
      others(inc, healAt, "after the restore");
      const done = inc.recent.find((x) => x.id === id && x.ended !== null);
      const gone = gauge(m, "prober_incident_active", expected) === undefined;
      return done && gone && !inc.active.some((x) => x.id === id) ? { done, m } : undefined;
    }).catch((e) => { throw fail(e); });
    console.log(`${label}: ended ${Date.now() - healAt} ms after the restore (ended ${ended.done.ended}, ${ended.done.windows} windows)`);
    expect(gauge(ended.m, "prober_incidents_total", { scope: expected.scope })).toBeGreaterThanOrEqual(1);
    expect(wrong).toEqual([]);
    expect([...other.values()]).toEqual([]);
  }

  test(`a. no fault for ${SOAK_S} s: no incident at any poll`, async () => {
    const t0 = Date.now();
    await waitFor("every icmp and udp pair of the mesh published at loss 0", 30_000, meshClean);
    await waitFor("the localiser's first window", 10_000, async () => (await server.json<Incidents>("/api/v1/incidents")).window_end !== null);
    console.log(`a. mesh clean ${Date.now() - t0} ms after the agents started`);
    const start = Date.now();
    const wrong: string[] = [];
    let polls = 0;
    let links = 0;
    while (Date.now() - start < SOAK_S * 1000) {
      const { inc, m } = await poll();
      polls++;
      links = Math.max(links, inc.unexplained?.links ?? 0);
      const at = `${Date.now() - start} ms`;
      for (const i of [...inc.active, ...inc.recent]) wrong.push(`${at}: ${name(i)}${i.ended ? " (ended)" : ""}: ${i.summary}`);
      if (samples(m, "prober_incident_active").length) wrong.push(`${at}: prober_incident_active ${JSON.stringify(samples(m, "prober_incident_active"))}`);
      const total = samples(m, "prober_incidents_total");
      if (total.length === 0 || total.some((s) => Number(s.value) !== 0)) wrong.push(`${at}: prober_incidents_total ${opened(m).join(" ")}`);
      await Bun.sleep(POLL_MS);
    }
    console.log(`a. watched the healthy mesh ${((Date.now() - start) / 1000).toFixed(1)} s (${polls} polls, up to ${links} links considered): ${wrong.length ? `${wrong.length} findings` : "no incident"}`);
    expect(wrong).toEqual([]);
    expect(links).toBe(24); // (agent, target host) links, kinds together: 6 agents x 4 agents of the other regions
    // The localiser ran on its worker thread, on every window.
    expect(logLines(server.proc!).filter((l) => l.msg === LOCALISER_WORKER_STARTED)).toHaveLength(1);
    const m = await server.metrics();
    expect(Number(samples(m, "prober_localiser_duration_seconds")[0]!.value)).toBeGreaterThan(0);
    expect(samples(m, "prober_localiser_windows_skipped_total")[0]!.value).toBe("0");
  }, SOAK_S * 1000 + 60_000);

  test("b. a1 drops 30 % of its egress: agent r1/<a1>, never its region", async () => {
    const a1 = bed.host("a1");
    await step("b. a1 egress", { scope: "agent", subject: `r1/${a1.ip}` }, async () => void (await dropRandom(a1.ns, "output", 30)), () => restore(a1.ns), (i) => {
      expect(i.regions).toEqual(["r1"]);
      expect(i.address).toBe(a1.ip);
      // Its requests and its answers both go out through the fault.
      expect(i.evidence.role).toBe("both");
      expect(i.evidence.cells.length).toBeGreaterThan(0);
      expect(i.evidence.cells.every((c) => c.source_region === "r1" || c.target_region === "r1")).toBe(true);
    });
  }, 3 * STEP_MS + HOLD_MS);

  test("c. b1 and b2 drop 30 % of their ingress: one region_ingress r2", async () => {
    const bs = [bed.host("b1"), bed.host("b2")];
    await step("c. r2 ingress", { scope: "region_ingress", subject: "r2" }, async () => void (await Promise.all(bs.map((h) => dropRandom(h.ns, "input", 30)))), async () => void (await Promise.all(bs.map((h) => restore(h.ns)))), (i) => {
      expect(i.regions).toEqual(["r2"]);
      expect(i.evidence.direction).toBe("ingress");
      expect(i.evidence.kinds).toContain("udp");
      expect(i.evidence.ingress_loss_ratio!).toBeGreaterThan(i.evidence.egress_loss_ratio!);
      // Both ways between r2 and each other region.
      const cells = i.evidence.cells.map((c) => `${c.source_region}>${c.target_region}`).sort();
      expect(cells).toEqual(["r1>r2", "r2>r1", "r2>r3", "r3>r2"]);
    });
  }, 3 * STEP_MS + HOLD_MS);

  test("d. only r1 <-> r3 drops 30 % each way: region_pair r1<->r3", async () => {
    const as = [bed.host("a1"), bed.host("a2")];
    const cs = [ip("c1"), ip("c2")];
    const fault = async () => void (await Promise.all(as.flatMap((h) => [dropRandom(h.ns, "output", 30, cs), dropRandom(h.ns, "input", 30, cs)])));
    await step("d. r1<->r3", { scope: "region_pair", subject: "r1<->r3" }, fault, async () => void (await Promise.all(as.map((h) => restore(h.ns)))), (i) => {
      expect(i.regions).toEqual(["r1", "r3"]);
      const cells = i.evidence.cells.map((c) => `${c.source_region}>${c.target_region}`).sort();
      expect(cells).toEqual(["r1>r3", "r3>r1"]);
    });
  }, 3 * STEP_MS + HOLD_MS);
});
