/**
 * What the benchmarks read about the processes they start (CPU, memory, from /proc) and the
 * redis-server they share a registry through; shared by bench/server.ts and bench/mesh.ts.
 */
import { readFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { freePort, run, start, waitFor, type Proc } from "../tests/helpers/procs.ts";

/**
 * The start() prefix that makes a server write a CPU profile to `dir` when it exits on SIGTERM
 * (Bun's --cpu-prof; Chrome's DevTools reads it) and log every garbage collection to dir/gc.log
 * (JavaScriptCore's BUN_JSC_logGC: `p=` is a pause of the thread, ms); [] without a dir.
 */
export function profilePrefix(dir: string | undefined): string[] {
  return dir ? ["env", `BUN_OPTIONS=--cpu-prof --cpu-prof-dir=${dir}`, "BUN_JSC_logGC=1", "sh", "-c", `exec "$@" 2>>${dir}/gc.log`, "sh"] : [];
}

/** utime + stime of a process so far, seconds of CPU. */
export function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

const statusKb = (pid: number, field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);

/** Peak resident memory of a process so far (VmHWM), MB. */
export const peakRssMb = (pid: number) => statusKb(pid, "VmHWM") / 1024;

/** Resident memory of a process now (VmRSS), MB. */
export const rssMb = (pid: number) => statusKb(pid, "VmRSS") / 1024;

/**
 * CPU used by some processes over a stretch of wall time: start() then stop() gives each one's
 * mean cores (CPU seconds per wall second) between the two calls, in the order of `pids`.
 */
export class CpuMeter {
  private c0: number[] = [];
  private t0 = 0;
  constructor(private readonly pids: readonly number[]) {}
  start(): this {
    this.c0 = this.pids.map(cpuSeconds);
    this.t0 = performance.now();
    return this;
  }
  /** @returns mean cores per process since start() */
  stop(): number[] {
    const s = (performance.now() - this.t0) / 1000;
    return this.pids.map((p, i) => (cpuSeconds(p) - this.c0[i]!) / s);
  }
}

/** A throwaway redis-server on loopback (no persistence), ready to answer. */
export async function startRedis(): Promise<{ proc: Proc; port: number; url: string }> {
  const port = await freePort();
  const proc = start(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
  await waitFor("redis ready", 10_000, async () => (await run(["redis-cli", "-p", String(port), "ping"])).stdout.trim() === "PONG");
  return { proc, port, url: `redis://127.0.0.1:${port}/0` };
}

/** This machine for a bench's notes: `2 × AMD EPYC` (nproc × the CPU model of /proc/cpuinfo). */
export function machine(): string {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpus()[0]?.model ?? "unknown CPU";
  return `${availableParallelism()} × ${model}`;
}
