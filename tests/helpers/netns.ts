/**
 * Network namespaces for tests (the project's own test hosts; created and removed by the test).
 * Needs root and iproute2. Nothing here touches addresses outside the namespaces it creates.
 */
import { $ } from "bun";

/** A pair of namespaces joined by a veth link: `near` (10.231.N.1/24) and `far` (10.231.N.2/24). */
export interface NsPair {
  near: string;
  far: string;
  nearIp: string;
  farIp: string;
  /** A host address in the subnet that nobody owns (never answers: ARP fails inside `near`). */
  unusedIp: string;
  /** `ip netns exec <near>` as an argv prefix. */
  inNear: string[];
  inFar: string[];
  remove(): Promise<void>;
}

let counter = 0;

/** Creates two namespaces joined by veth, loopback up in both. */
export async function createNsPair(tag: string): Promise<NsPair> {
  const n = (process.pid % 200) + counter++;
  const near = `pm-${tag}-a-${n}`;
  const far = `pm-${tag}-b-${n}`;
  const sub = `10.231.${n % 250}`;
  await $`ip netns add ${near}`.quiet();
  await $`ip netns add ${far}`.quiet();
  await $`ip link add pmv${n}a netns ${near} type veth peer name pmv${n}b netns ${far}`.quiet();
  await $`ip -n ${near} addr add ${sub}.1/24 dev pmv${n}a`.quiet();
  await $`ip -n ${far} addr add ${sub}.2/24 dev pmv${n}b`.quiet();
  for (const [ns, dev] of [[near, `pmv${n}a`], [far, `pmv${n}b`]] as const) {
    await $`ip -n ${ns} link set lo up`.quiet();
    await $`ip -n ${ns} link set ${dev} up`.quiet();
  }
  return {
    near, far, nearIp: `${sub}.1`, farIp: `${sub}.2`, unusedIp: `${sub}.99`,
    inNear: ["ip", "netns", "exec", near], inFar: ["ip", "netns", "exec", far],
    async remove() {
      await $`ip netns del ${near}`.quiet().nothrow();
      await $`ip netns del ${far}`.quiet().nothrow();
    },
  };
}

/** True when `ip netns` works here (root with iproute2). */
export async function netnsAvailable(): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  const r = await $`ip netns list`.quiet().nothrow();
  return r.exitCode === 0;
}
