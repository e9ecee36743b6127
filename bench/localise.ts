/**
 * Localiser bench (issue 20 "Measure it"): simulated meshes (bench/localise_sim.ts) with one
 * injected fault per scenario plus background loss, run window by window through the real
 * Localiser and IncidentBook (lib/localiser). Prints one markdown table: per scenario and scope,
 * the precision and recall of the incidents opened, the time to the first correct incident, the
 * other incidents opened; then false incidents per hour on a clean mesh and the localiser's CPU
 * time per window. Deterministic (seeded) but for the CPU times.
 *
 *   npm run bench:localise                       # 50 regions x 4 agents, 2 seeds, 2 processes
 *   npm run bench:localise -- --seeds 1 --regions 20 --agents 2
 *   flags (or env LOCALISE_<NAME>): --regions --agents --cores --seeds --jobs --p0 --burst (rate per link per window)
 */
import { cpus } from "node:os";
import { DEFAULT_SIM, FAULTS, coreIp, edgeIp, regionName, runScenario, type FaultKind, type RunResult, type SimOptions } from "./localise_sim.ts";

const flag = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i > 0 ? process.argv[i + 1] : process.env[`LOCALISE_${name.toUpperCase()}`];
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: not a number: ${v}`);
  return n;
};

// A worker runs its share of the scenarios and prints their results as JSON.
const wi = process.argv.indexOf("--worker");
if (wi > 0) {
  const { sim, runs } = JSON.parse(process.argv[wi + 1]!) as { sim: SimOptions; runs: [FaultKind, number][] };
  console.log(JSON.stringify(runs.map(([kind, seed]) => runScenario(kind, seed, sim))));
  process.exit(0);
}

const sim: SimOptions = {
  ...DEFAULT_SIM, regions: flag("regions", DEFAULT_SIM.regions), agents: flag("agents", DEFAULT_SIM.agents), cores: flag("cores", DEFAULT_SIM.cores),
  p0: flag("p0", DEFAULT_SIM.p0), burstRate: flag("burst", DEFAULT_SIM.burstRate),
};
const seeds = flag("seeds", 2), jobs = Math.max(1, flag("jobs", Math.min(2, cpus().length)));
const kinds = (Object.keys(FAULTS) as FaultKind[]).filter((k) => k !== "clean");
const runs: [FaultKind, number][] = [["clean", 1], ...kinds.flatMap((k) => Array.from({ length: seeds }, (_, s) => [k, s + 1] as [FaultKind, number]))];

// Spread the runs over `jobs` processes, the longest first (the clean run is 6 scenarios long).
const share: [FaultKind, number][][] = Array.from({ length: jobs }, () => []);
const load = new Array<number>(jobs).fill(0);
for (const r of runs) {
  const j = load.indexOf(Math.min(...load));
  share[j]!.push(r);
  load[j] += r[0] === "clean" ? 240 : 40;
}
const t0 = performance.now();
const results = (await Promise.all(share.filter((s) => s.length).map(async (part) => {
  const p = Bun.spawn([process.execPath, import.meta.path, "--worker", JSON.stringify({ sim, runs: part })], { stdout: "pipe", stderr: "inherit" });
  const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  if (code !== 0) throw new Error(`worker exited ${code}`);
  return JSON.parse(out) as RunResult[];
}))).flat();
const wallS = (performance.now() - t0) / 1000;

/** How an incident that is not the truth relates to the fault (for the "other incidents" column). */
function relation(r: RunResult, i: { scope: string; subject: string }): string {
  const t = r.truth!;
  const faultRegions = t.scope === "agent" ? [t.subject.split("/")[0]!] : t.scope === "region_pair" ? t.subject.split("<->") : t.scope === "hop" ? [] : [t.subject];
  const near = (() => {
    if (i.scope === "hop") return faultRegions.some((n) => i.subject === edgeIp(Number(n.slice(1)) - 1)) ? "edge of a faulty region" : i.subject.startsWith("172.16.") ? "a core" : "an edge";
    const regions = i.scope === "agent" ? [i.subject.split("/")[0]!] : i.scope === "region_pair" ? i.subject.split("<->") : [i.subject];
    if (t.scope === "hop") return "";
    return regions.some((x) => faultRegions.includes(x)) ? (i.scope === t.scope ? "wrong subject" : "faulty region") : "elsewhere";
  })();
  return near ? `${i.scope} (${near})` : i.scope;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};
const pct = (n: number, d: number) => (d ? `${Math.round((100 * n) / d)} %` : "-");
const winS = sim.windowMs / 1000;

/** One table row for a set of runs of faulty scenarios. */
function row(scope: string, label: string, rs: RunResult[]): string {
  let opened = 0, correct = 0, found = 0;
  const ttd: number[] = [];
  const others = new Map<string, number>();
  for (const r of rs) {
    const inSpan = r.opened.filter((i) => i.window >= r.from && i.window <= r.to + 10);
    const right = inSpan.filter((i) => i.scope === r.truth!.scope && i.subject === r.truth!.subject);
    opened += inSpan.length;
    correct += right.length;
    if (right.length) (found++, ttd.push(right[0]!.window - r.from + 1));
    for (const i of inSpan) if (!right.includes(i)) others.set(relation(r, i), (others.get(relation(r, i)) ?? 0) + 1);
  }
  const o = [...others].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k, n]) => `${n} ${k}`).join(", ") || "none";
  const t = ttd.length ? `${median(ttd)} / ${Math.max(...ttd)} (${median(ttd) * winS} s / ${Math.max(...ttd) * winS} s)` : "-";
  return `| ${scope} | ${label} | ${rs.length} | ${opened} | ${pct(correct, opened)} | ${pct(found, rs.length)} | ${t} | ${o} |`;
}

const lines = [
  "| scope | scenario | runs | incidents opened | precision | recall | first correct incident, windows: median / max | other incidents opened |",
  "|---|---|---|---|---|---|---|---|",
];
const byScope = new Map<string, FaultKind[]>();
for (const k of kinds) {
  const scope = results.find((r) => r.kind === k)!.truth!.scope;
  byScope.set(scope, [...(byScope.get(scope) ?? []), k]);
}
for (const [scope, ks] of byScope) {
  for (const k of ks) lines.push(row(scope, k, results.filter((r) => r.kind === k)));
  if (ks.length > 1) lines.push(row(`**${scope}**`, "**all**", results.filter((r) => ks.includes(r.kind))));
}
const clean = results.filter((r) => r.kind === "clean");
const cleanHours = clean.reduce((s, r) => s + (r.windows * sim.windowMs) / 3_600_000, 0);
const falseOpened = clean.flatMap((r) => r.opened);
const byKind = new Map<string, number>();
for (const i of falseOpened) byKind.set(i.scope, (byKind.get(i.scope) ?? 0) + 1);
lines.push(`| (none) | clean, ${clean.reduce((s, r) => s + r.windows, 0)} windows | ${clean.length} | ${falseOpened.length} | false incidents: ${(falseOpened.length / cleanHours).toFixed(1)} per hour | - | - | ${[...byKind].map(([k, n]) => `${n} ${k}`).join(", ") || "none"} |`);
const preFault = results.filter((r) => r.kind !== "clean").flatMap((r) => r.opened.filter((i) => i.window < r.from));
const cpuMs = results.reduce((s, r) => s + r.cpuMs, 0) / results.reduce((s, r) => s + r.windows, 0);

const hosts = sim.regions * sim.agents;
console.log(`Localiser bench: ${sim.regions} regions x ${sim.agents} agents (${hosts} agents, ${(2 * hosts * (hosts - sim.agents)).toLocaleString("en")} link samples a window), ${sim.cores} core routers, ${winS} s windows; ${seeds} seed(s) per scenario\n`);
console.log(lines.join("\n"));
console.log(`
Localiser CPU time per window (observe + update, ${sim.regions} x ${sim.agents}): ${cpuMs.toFixed(0)} ms mean over ${results.reduce((s, r) => s + r.windows, 0)} windows.

- Each fault scenario: 10 clean windows, 20 faulty, 10 clean; its fault and subject drawn from the seed. Background on every window: each packet lost with p0 = ${sim.p0} each way; each link has a one-window burst of ${sim.burstMin * 100}-${sim.burstMax * 100} % loss at one router of its path with probability ${sim.burstRate * 100} %.
- Faults: ${kinds.map((k) => `${k}: ${FAULTS[k]}`).join("; ")}.
- precision: incidents opened during the fault and the 10 windows after it that name the truth (scope and subject), over all incidents opened then; recall: runs in which the right incident opened; first correct incident: windows from the fault's first window to the end of the window that opened it (x ${winS} s).
- other incidents opened: the wrong ones by scope, and where (an edge of a faulty region, a core, an edge elsewhere; the faulty region; elsewhere).
- clean: ${FAULTS.clean}; false incidents per hour of mesh time. Incidents opened in the fault scenarios' 10 clean windows before the fault: ${preFault.length} (over ${results.filter((r) => r.kind !== "clean").length * 10} windows).
- Traces: a link whose round lost >= 5 % is traced at most once per ${sim.traceEvery} windows, 10 probes per hop, seen by the server from the next window.
- Wall time ${wallS.toFixed(0)} s on ${jobs} process(es). Subjects: agents 10.<r>.0.<j>, edge routers 10.<r>.255.1, cores 172.16.0.<k>; regions ${regionName(0)}..${regionName(sim.regions - 1)}.`);
