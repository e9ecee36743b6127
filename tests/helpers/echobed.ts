/**
 * The ICMP ground-truth test bed: a namespace pair (tests/helpers/netns.ts) whose "far" side has
 * the kernel's echo replies turned off and answers from tests/fixtures/responder.ts instead, with
 * seeded delay / drop / duplicate / corruption and a per-packet log of what it did. The engine
 * under test runs in the "near" namespace through tests/fixtures/echo.ts. Needs root.
 */
import { $ } from "bun";
import { rmSync } from "node:fs";
import type { EchoOptions, EchoOutcome } from "../../lib/probes/icmp/engine.ts";
import { createNsPair, type NsPair } from "./netns.ts";
import { ROOT, run, start, type Proc } from "./procs.ts";
import { quantile } from "./stats.ts";

/** What the responder does with echo requests (durations in ms, fractions 0..1). */
export interface ResponderParams {
  meanMs: number;
  stddevMs: number;
  drop: number;
  /** Drop every request whose sequence number is a multiple of this (instead of `drop`). */
  dropEvery?: number;
  dup?: number;
  corrupt?: number;
  seed: number;
}

/** One responder log line (see tests/fixtures/responder.ts); times in ns. */
export interface ResponderEntry {
  seq: number;
  id: number;
  action: "drop" | "reply";
  dup: boolean;
  corrupt: boolean;
  rxNs: number;
  txNs: number | null;
  holdNs: number | null;
}

/** One round run by the engine in the near namespace. */
export interface RoundRun {
  ip: string;
  outcome: EchoOutcome;
  startMs: number;
  endMs: number;
}

export interface EchoBed {
  pair: NsPair;
  /** Median RTT of the bare veth path with the kernel answering, seconds (measured by the engine). */
  bareRttSeconds: number;
  /** Runs rounds concurrently on one engine in the near namespace while a responder answers. */
  pingThrough(params: ResponderParams, rounds: (Partial<EchoOptions> & { ip: string })[]): Promise<{ rounds: RoundRun[]; log: ResponderEntry[] }>;
  remove(): Promise<void>;
}

const ECHO = `${ROOT}tests/fixtures/echo.ts`;
const RESPONDER = `${ROOT}tests/fixtures/responder.ts`;

/**
 * Starts the responder in `pair.far` (whose kernel echo replies must be off) and waits until it
 * listens. Stop it with SIGTERM, then read `log` (JSON lines of ResponderEntry).
 */
export async function startResponder(pair: NsPair, params: ResponderParams, log: string): Promise<Proc> {
  const responder = start([process.execPath, RESPONDER, JSON.stringify({ ...params, log })], pair.inFar);
  for (let i = 0; i < 100 && !responder.output().includes("ready"); i++) await Bun.sleep(50);
  if (!responder.output().includes("ready")) {
    await responder.kill();
    throw new Error(`responder did not start: ${responder.output()}`);
  }
  return responder;
}

/** Reads a responder log written on SIGTERM. */
export async function readResponderLog(log: string): Promise<ResponderEntry[]> {
  const text = await Bun.file(log).text();
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as ResponderEntry);
}

/** Runs rounds on one engine inside `ns`. */
export async function echoIn(pair: NsPair, rounds: (Partial<EchoOptions> & { ip: string })[]): Promise<RoundRun[]> {
  const r = await run([...pair.inNear, process.execPath, ECHO, JSON.stringify({ prefer: "raw", rounds })]);
  if (r.code !== 0) throw new Error(`echo fixture failed: ${r.stderr}`);
  return JSON.parse(r.stdout).rounds;
}

/** Creates the bed: namespaces, the bare-path RTT (kernel replies), then kernel replies off in `far`. */
export async function createEchoBed(tag: string): Promise<EchoBed> {
  const pair = await createNsPair(tag);
  try {
    const [bare] = await echoIn(pair, [{ ip: pair.farIp, count: 200, intervalMs: 1 }]);
    const bareRttSeconds = quantile(bare!.outcome.rttsSeconds, 0.5);
    await $`ip netns exec ${pair.far} sysctl -qw net.ipv4.icmp_echo_ignore_all=1`.quiet();
    return {
      pair,
      bareRttSeconds,
      async pingThrough(params, rounds) {
        const logFile = `/tmp/pm-responder-${process.pid}-${Date.now()}.jsonl`;
        const responder = await startResponder(pair, params, logFile);
        try {
          const runs = await echoIn(pair, rounds);
          responder.proc.kill("SIGTERM");
          await responder.exited;
          return { rounds: runs, log: await readResponderLog(logFile) };
        } finally {
          await responder.kill();
          rmSync(logFile, { force: true });
        }
      },
      remove: () => pair.remove(),
    };
  } catch (e) {
    await pair.remove();
    throw e;
  }
}
