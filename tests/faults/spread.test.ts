/**
 * Probes of one target are spread across agents (docs/probes.md): a job's offset inside the probe
 * interval depends on the agent (region/ip) as well as the target, so a mesh of N agents does not
 * send its echoes to a target all in the same instant (which a target's rate limit, or a busy
 * link, would turn into loss that is not there).
 *
 * Six agents in six namespaces (three regions, two agents each) probe one target in a seventh
 * (static discovery, 2 echoes per round, a 2 s interval). The target records the kernel receive
 * time of every echo request (tests/helpers/icmp_tool.ts capture). Per agent, each round's first
 * echo gives a phase (time mod interval); the agent's phase is the median over its rounds.
 *
 * Assertions, with I = 2000 ms and the six phases uniformly random under a correct spread:
 * - the six phases are not all within one 100 ms arc. Uniform: P = 6 x (100/2000)^5 = 1.9e-6.
 *   The old behaviour (an offset from the target alone) puts all six within a few ms of each
 *   other: it fails with certainty, even with 100 ms of scheduling jitter.
 * - fewer than 3 pairs of agents are closer than 5 ms. Uniform: P(3 or more) = 4.4e-4 (Monte Carlo,
 *   2e5 draws); all at once: 15 pairs.
 * The bed's addresses are fixed (subnet 10.241.200.0/24), so for a given implementation the
 * offsets, and the outcome, are the same at every run: no flakiness from the draw.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { bedAgent, bedServer, createMeshBed, faultBedMissing, type MeshBed } from "../helpers/meshbed.ts";
import { ROOT, killAll, skipReason, waitFor, type Proc } from "../helpers/procs.ts";

const missing = await faultBedMissing();
if (missing) skipReason(`tests/faults/spread.test.ts ${missing}`);

const INTERVAL_MS = 2000;
const AGENTS = { s1: "ra", s2: "ra", s3: "rb", s4: "rb", s5: "rc", s6: "rc" } as const;
const ROUNDS = 6;

/** Circular distance of two phases, ms. */
const dist = (a: number, b: number) => {
  const d = Math.abs(a - b) % INTERVAL_MS;
  return Math.min(d, INTERVAL_MS - d);
};

/** The smallest arc (ms) that holds every phase: the interval minus the largest gap between neighbours. */
function coveringArc(phases: number[]): number {
  const p = [...phases].sort((x, y) => x - y);
  let gap = p[0]! + INTERVAL_MS - p[p.length - 1]!;
  for (let i = 1; i < p.length; i++) gap = Math.max(gap, p[i]! - p[i - 1]!);
  return INTERVAL_MS - gap;
}

describe.skipIf(!!missing)("probes spread across agents", () => {
  let bed: MeshBed;
  let capture: Proc;
  const file = `${mkdtempSync(`${tmpdir()}/pmf-spread-`)}/echoes.jsonl`;

  beforeAll(async () => {
    bed = await createMeshBed("spread", [...Object.keys(AGENTS), "tgt"], { subnet: 200 });
    const tgt = bed.host("tgt");
    const probes = `${mkdtempSync(`${tmpdir()}/pmf-spread-`)}/probes.yaml`;
    writeFileSync(probes, `prober_configs:\n  - prober_type: icmp\n    region: dst\n    icmp: {packet_count: 2, interval: 10ms, timeout: 500ms}\n    targets: [${tgt.ip}]\n`);
    const server = bedServer(bed, 6000, 6001, ["-server.probe.file", probes, "-server.icmp.discovery", "static"]);
    await server.start();
    capture = bed.start(tgt.ns, [process.execPath, `${ROOT}tests/helpers/icmp_tool.ts`, "capture", file]);
    await waitFor("capture ready", 10_000, () => capture.output().includes("ready"));
    for (const [name, region] of Object.entries(AGENTS)) bedAgent(bed, bed.host(name), region, server.rpcAddr, ["-agent.probe.interval", `${INTERVAL_MS}ms`]);
  }, 60_000);
  afterAll(async () => {
    await killAll();
    await bed?.remove();
  });

  test("six agents' rounds to one target start at different points of the interval", async () => {
    const ips = Object.keys(AGENTS).map((n) => bed.host(n).ip);
    /** Per source: the receive times of each round's first echo. */
    const firsts = () => {
      const bySrc = new Map<string, number[]>();
      for (const line of readFileSync(file, "utf8").split("\n")) {
        if (!line) continue;
        const e = JSON.parse(line) as { src: string; ms: number };
        const list = bySrc.get(e.src) ?? [];
        list.push(e.ms);
        bySrc.set(e.src, list);
      }
      const out = new Map<string, number[]>();
      for (const [src, times] of bySrc) {
        times.sort((a, b) => a - b);
        // A round's echoes are 10 ms apart; rounds are 2 s apart.
        out.set(src, times.filter((t, i) => i === 0 || t - times[i - 1]! > 500));
      }
      return out;
    };
    await waitFor(`${ROUNDS} rounds of every agent at the target`, 60_000, () => ips.every((ip) => (firsts().get(ip)?.length ?? 0) >= ROUNDS + 1));
    await capture.kill("SIGTERM");

    const f = firsts();
    const phases = ips.map((ip) => {
      // Skip the first round (the agent may start mid-interval); median of the phases, unwrapped
      // around the first one so that a phase near 0 and one near I count as neighbours.
      const ph = f.get(ip)!.slice(1).map((t) => t % INTERVAL_MS);
      const ref = ph[0]!;
      const rel = ph.map((p) => ((p - ref + INTERVAL_MS * 1.5) % INTERVAL_MS) - INTERVAL_MS / 2).sort((a, b) => a - b);
      return (ref + rel[rel.length >> 1]! + INTERVAL_MS) % INTERVAL_MS;
    });
    const report = ips.map((ip, i) => `${ip} (${Object.values(AGENTS)[i]}): ${phases[i]!.toFixed(1)} ms`).join(", ");
    console.log(`phases of the first echo in the ${INTERVAL_MS} ms interval: ${report}`);
    const arc = coveringArc(phases);
    let close = 0;
    for (let i = 0; i < phases.length; i++) for (let j = i + 1; j < phases.length; j++) if (dist(phases[i]!, phases[j]!) < 5) close++;
    expect({ coveringArcOver100ms: arc > 100, arc: Math.round(arc), phases: report }).toMatchObject({ coveringArcOver100ms: true });
    expect({ fewerThan3PairsCloserThan5ms: close < 3, close, phases: report }).toMatchObject({ fewerThan3PairsCloserThan5ms: true });
  }, 120_000);
});
