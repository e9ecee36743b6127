/**
 * Previous releases for the rolling-upgrade tests (tests/compat.test.ts, shared_registry.test.ts):
 * their commits, written once, and their binaries built from those commits once per machine (a
 * cache folder keyed by commit and role, so the two tests of one run share the builds).
 */
import { $ } from "bun";
import { existsSync, mkdirSync, renameSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { ROOT } from "./procs.ts";

/** The commits of the previous releases, oldest first (the last is the previous one; older ones are kept while fleets still run them). */
export const PREVIOUS_RELEASES = [
  { commit: "fe6bb29", version: "0.1.0", region: "v010", ip: "127.0.70.1" },
  { commit: "dfd9e7e", version: "0.2.0", region: "v020", ip: "127.0.70.3" },
  { commit: "f596d49", version: "0.3.0", region: "v030", ip: "127.0.70.4" },
  { commit: "313dacb", version: "0.4.0", region: "v040", ip: "127.0.70.5" },
  { commit: "10f0d27", version: "0.5.0", region: "v050", ip: "127.0.70.6" },
  { commit: "2f1d7d4", version: "0.6.0", region: "v060", ip: "127.0.70.7" },
  { commit: "0727892", version: "0.7.0", region: "v070", ip: "127.0.70.8" },
] as const;
export type Release = (typeof PREVIOUS_RELEASES)[number];

/** The release before this one. */
export const PREVIOUS_RELEASE: Release = PREVIOUS_RELEASES.at(-1)!;

/** True when this checkout has the commits of `releases` (a shallow clone does not). */
export async function hasReleaseHistory(releases: readonly Release[] = PREVIOUS_RELEASES): Promise<boolean> {
  const codes = await Promise.all(releases.map(async (r) => (await $`git -C ${ROOT} cat-file -e ${r.commit}^{commit}`.quiet().nothrow()).exitCode));
  return codes.every((c) => c === 0);
}

const CACHE = `${tmpdir()}/probermesh-releases`;

/**
 * The compiled `role` binary of release `r`, built from its commit on first use (git archive, this
 * checkout's node_modules, `bun build --compile`). @returns its path
 */
export async function releaseBinary(r: Release, role: "agent" | "server"): Promise<string> {
  const src = `${CACHE}/${r.commit}`;
  const out = `${CACHE}/${role}-${r.version}-${r.commit}`;
  if (existsSync(out)) return out;
  if (!existsSync(`${src}/package.json`)) {
    const tmp = `${src}.${process.pid}`;
    mkdirSync(tmp, { recursive: true });
    await $`git -C ${ROOT} archive ${r.commit} | tar -x -C ${tmp}`.quiet();
    symlinkSync(`${ROOT}node_modules`, `${tmp}/node_modules`);
    renameSync(tmp, src);
  }
  await $`${process.execPath} build --compile ${src}/${role}.ts --outfile ${out}.tmp`.quiet();
  renameSync(`${out}.tmp`, out);
  return out;
}
