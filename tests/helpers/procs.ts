/**
 * Test helpers: run the compiled binaries (dist/server, dist/agent) as real processes, find free
 * loopback ports, wait for conditions, and read /metrics.
 */
import { spawn, type Subprocess } from "bun";
import { createServer } from "node:net";

export const ROOT = new URL("../..", import.meta.url).pathname;
export const SERVER_BIN = `${ROOT}dist/server`;
export const AGENT_BIN = `${ROOT}dist/agent`;

/** A child process with captured output. */
export interface Proc {
  proc: Subprocess;
  output: () => string;
  exited: Promise<number>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const running = new Set<Proc>();

/** Starts a command; its stdout+stderr are collected. `prefix` runs it inside e.g. `ip netns exec NS`. */
export function start(cmd: string[], prefix: string[] = []): Proc {
  const proc = spawn([...prefix, ...cmd], { stdout: "pipe", stderr: "pipe", cwd: ROOT });
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) out += Buffer.from(chunk).toString();
  };
  const done = Promise.all([pump(proc.stdout as ReadableStream<Uint8Array>), pump(proc.stderr as ReadableStream<Uint8Array>)]);
  const p: Proc = {
    proc,
    output: () => out,
    exited: proc.exited.then(async (c) => (await done, c)),
    async kill(signal = "SIGKILL") {
      proc.kill(signal);
      await proc.exited;
      running.delete(p);
    },
  };
  running.add(p);
  return p;
}

/** Kills every process started by start() (call in afterAll). */
export async function killAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.kill()));
}

/** Runs a command to completion. */
export async function run(cmd: string[], opts: { stdin?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: opts.stdin !== undefined ? new TextEncoder().encode(opts.stdin) : undefined, cwd: ROOT, env: process.env });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** A free TCP port on 127.0.0.1 (bound and released). */
export async function freePort(): Promise<number> {
  // The kernel may hand out a port it just gave (two calls in a row, e.g. an RPC and an HTTP
  // port for one server, would then collide and the server exit): never the same one twice.
  for (let i = 0; i < 50; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error("freePort: no port not handed out before in 50 tries");
}

/** Ports freePort() returned in this process. */
const handedOut = new Set<number>();

/** Polls `check` every 100 ms until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined | false> | T | undefined | false): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await Bun.sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/** One sample line of the Prometheus text exposition format: `name{labels} value`. */
export interface Sample {
  labels: Record<string, string>;
  value: string;
}

/**
 * Parses exposition text into sample name -> samples (histograms appear as name_bucket,
 * name_count and name_sum, exactly as exposed).
 */
export function parseExposition(text: string): Map<string, Sample[]> {
  const out = new Map<string, Sample[]>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    const list = out.get(m[1]!) ?? [];
    list.push({ labels, value: m[3]! });
    out.set(m[1]!, list);
  }
  return out;
}

/** Scrapes a /metrics URL. */
export async function scrape(url: string): Promise<Map<string, Sample[]>> {
  return parseExposition(await (await fetch(url)).text());
}

/** Samples of `name` whose labels include `labels`. */
export function samples(m: Map<string, Sample[]>, name: string, labels: Record<string, string> = {}): Sample[] {
  return (m.get(name) ?? []).filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** True when running as root (raw sockets, network namespaces). */
export const IS_ROOT = process.getuid?.() === 0;

/** Logs why a test is skipped (bun prints skipped tests, this says why). */
export function skipReason(reason: string): void {
  console.log(`[skip] ${reason}`);
}

/**
 * Agent flags for the `i`-th of several agents sharing one host (loopback tests): its own UDP
 * responder and TCP listener ports and its own 16-port flow ranges, so no agent's bind fails on
 * another's (on separate machines the defaults serve). Ports 45000-46999.
 */
export function sharedHostAgentFlags(i: number): string[] {
  const base = 45_000 + (i % 20) * 80;
  return [
    "-agent.udp.listen.port", String(base), "-agent.tcp.listen.port", String(base + 1),
    "-agent.udp.flow.ports", `${base + 10}-${base + 25}`, "-agent.tcp.flow.ports", `${base + 40}-${base + 55}`,
  ];
}
