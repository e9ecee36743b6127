/**
 * Region discovery: flag, then PROBER_REGION, then cloud metadata; nothing answers -> exit 2.
 * The metadata path runs inside an empty network namespace (no interface up), so its requests
 * fail locally and nothing leaves the machine.
 */
import { expect, test } from "bun:test";
import { $ } from "bun";
import { discoverRegion } from "../lib/agent/region.ts";
import { AGENT_BIN, skipReason } from "./helpers/procs.ts";
import { netnsAvailable } from "./helpers/netns.ts";

test("flag wins over env; env is used when the flag is empty", async () => {
  expect(await discoverRegion("r-flag", { PROBER_REGION: "r-env" }, [])).toEqual({ region: "r-flag", source: "flag -agent.region" });
  expect(await discoverRegion("", { PROBER_REGION: "r-env" }, [])).toEqual({ region: "r-env", source: "env PROBER_REGION" });
});

test("the first metadata source to answer wins; a bad answer is ignored", async () => {
  const sources = [
    { cloud: "slow", fetchRegion: () => Bun.sleep(300).then(() => "slow-region") },
    { cloud: "fast", fetchRegion: async () => "fast-region" },
    { cloud: "junk", fetchRegion: async () => "<html>" },
  ];
  expect(await discoverRegion("", {}, sources)).toEqual({ region: "fast-region", source: "fast instance metadata" });
});

test("no flag, no env, no metadata: the agent exits 2 saying so", async () => {
  if (!(await netnsAvailable())) return skipReason("needs root and ip netns: the metadata requests must run where they cannot leave the machine");
  const ns = `pm-region-${process.pid}`;
  await $`ip netns add ${ns}`.quiet();
  try {
    const t0 = performance.now();
    const env = { ...process.env, PROBER_REGION: "" };
    const r = await $`ip netns exec ${ns} ${AGENT_BIN} -agent.ip 127.0.0.1`.env(env).quiet().nothrow();
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString()).toContain("no region");
    expect(r.stderr.toString()).toContain("-agent.region");
    expect(performance.now() - t0).toBeLessThan(5000);
  } finally {
    await $`ip netns del ${ns}`.quiet().nothrow();
  }
});
