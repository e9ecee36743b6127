/**
 * The localiser bench's simulated mesh (bench/localise_sim.ts) at a tiny size (6 regions x 2
 * agents, 3 core routers, seed 1), through the real Localiser and IncidentBook: the injected fault
 * opens the incident that names it (scope and subject), and an hour of a clean mesh (background
 * loss and one-window bursts only) opens none. Incidents opened besides the right one are printed
 * (the bench's precision column counts them), not asserted.
 */
import { describe, expect, test } from "bun:test";
import { DEFAULT_SIM, binomial, drawFault, MeshSim, prng, runScenario, type FaultKind, type SimOptions } from "../bench/localise_sim.ts";

const TINY: SimOptions = { ...DEFAULT_SIM, regions: 6, agents: 2, cores: 3 };
const fmt = (i: { window?: number; scope: string; subject: string }) => `${i.scope} ${i.subject}`;

describe("localiser on the simulated mesh (6 x 2)", () => {
  for (const kind of ["agent", "region_ingress", "region_pair"] as FaultKind[]) {
    test(`${kind}: the incident naming the fault opens while it lasts`, () => {
      const r = runScenario(kind, 1, TINY, true);
      const during = r.opened.filter((i) => i.window >= r.from && i.window <= r.to);
      const others = r.opened.filter((i) => fmt(i) !== fmt(r.truth!));
      if (others.length) console.log(`${kind}: other incidents opened: ${others.map((i) => `${fmt(i)} (window ${i.window})`).join(", ")}`);
      // On failure, what the localiser explained in the fault's first windows says why.
      expect({ opened: during.map(fmt), said: r.said!.slice(r.from - 1, r.from + 2) }).toMatchObject({ opened: expect.arrayContaining([fmt(r.truth!)]) });
    });
  }

  test("an hour of a clean mesh (240 windows) opens no incident", () => {
    const r = runScenario("clean", 1, TINY);
    expect(r.opened.map((i) => `${fmt(i)} (window ${i.window})`)).toEqual([]);
  });
});

describe("the simulator", () => {
  test("is deterministic: the same scenario and seed give the same windows", () => {
    const a = new MeshSim(drawFault("hop", 3, TINY), 3, TINY), b = new MeshSim(drawFault("hop", 3, TINY), 3, TINY);
    for (let w = 1; w <= 15; w++) expect(JSON.stringify(a.window())).toBe(JSON.stringify(b.window()));
  });

  test("binomial draws have the binomial's mean", () => {
    const rnd = prng(7);
    for (const p of [0.001, 0.3, 0.51, 0.9]) {
      let s = 0;
      for (let i = 0; i < 20_000; i++) s += binomial(64, p, rnd);
      expect(s / 20_000).toBeCloseTo(64 * p, 0);
    }
  });

  test("a hop fault: traces through the faulty core lose from the hop after it, both ways; hops before it are clean", () => {
    const o = { ...TINY, burstRate: 0 };
    const f = drawFault("hop", 1, o);
    const sim = new MeshSim(f, 1, o);
    // Traces taken in the fault's first window reach the server in the next one.
    for (let w = 1; w <= f.from; w++) sim.window();
    const w = sim.window();
    const core = f.truth!.subject;
    const through = w.traces.filter((t) => t.hops.some((h) => h.address === core));
    expect(through.length).toBeGreaterThan(0);
    let sent = 0, lost = 0;
    for (const t of through) {
      const k = t.hops.findIndex((h) => h.address === core);
      expect(t.hops.slice(0, k + 1).every((h) => h.received === h.sent)).toBe(true);
      for (const h of t.hops.slice(k + 1)) (sent += h.sent), (lost += h.sent - h.received);
    }
    // The round trip to a hop after the core crosses it twice: 1 - 0.7 x 0.7 = 51 % lost.
    expect(lost / sent).toBeGreaterThan(0.4);
    expect(lost / sent).toBeLessThan(0.62);
    expect(w.traces.every((t) => t.hops.some((h) => h.address === core) || t.hops.every((h) => h.received === h.sent))).toBe(true);
  });
});
