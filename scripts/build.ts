/**
 * Compiles server.ts and agent.ts into self-contained executables dist/server and dist/agent
 * (`bun build --compile`; they run with no node_modules beside them), with the git commit and the
 * build date compiled in (shown by `-v`).
 *
 *   bun run scripts/build.ts                      # this machine's platform, into dist/
 *   bun run scripts/build.ts TARGET OUTDIR        # e.g. bun-linux-arm64 dist/release (scripts/release.ts)
 */
import { $ } from "bun";

const root = new URL("..", import.meta.url).pathname;

/** The defines that -v reads (lib/version.ts). */
export async function buildDefines(): Promise<string[]> {
  const commit = (await $`git -C ${root} rev-parse --short HEAD`.quiet().nothrow()).stdout.toString().trim() || "unknown";
  const date = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  return ["--define", `PROBERMESH_COMMIT=${JSON.stringify(commit)}`, "--define", `PROBERMESH_BUILD_DATE=${JSON.stringify(date)}`];
}

/** Worker threads each role starts, bundled as entry points of their own (server.ts names them by path). */
const WORKERS: Record<"server" | "agent", string[]> = { server: ["lib/localiser/worker.ts"], agent: [] };

/** Builds one role for one target. @returns the output path */
export async function buildOne(role: "server" | "agent", outfile: string, target?: string): Promise<string> {
  const t = target ? [`--target=${target}`] : [];
  const workers = WORKERS[role].map((w) => `${root}${w}`);
  await $`${process.execPath} build --compile --minify-syntax ${t} ${await buildDefines()} ${root}${role}.ts ${workers} --outfile ${outfile}`.quiet();
  return outfile;
}

if (import.meta.main) {
  for (const role of ["server", "agent"] as const) {
    await buildOne(role, `${root}dist/${role}`);
    console.log(`built dist/${role}`);
  }
}
