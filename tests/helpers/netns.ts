/**
 * Network namespaces for tests (the project's own test hosts; created and removed by the test).
 * Needs root and iproute2. Nothing here touches addresses outside the namespaces it creates.
 */
import { $ } from "bun";

/**
 * A pair of namespaces joined by a veth link: `near` (10.231.N.1/24, fd00:231:N::1/64) and `far`
 * (10.231.N.2/24, fd00:231:N::2/64; ULA addresses, no DAD delay).
 */
export interface NsPair {
  near: string;
  far: string;
  nearIp: string;
  farIp: string;
  nearIp6: string;
  farIp6: string;
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
  const sub6 = `fd00:231:${(n % 250).toString(16)}:`;
  await $`ip -n ${near} addr add ${sub6}:1/64 dev pmv${n}a nodad`.quiet();
  await $`ip -n ${far} addr add ${sub6}:2/64 dev pmv${n}b nodad`.quiet();
  for (const [ns, dev] of [[near, `pmv${n}a`], [far, `pmv${n}b`]] as const) {
    await $`ip -n ${ns} link set lo up`.quiet();
    await $`ip -n ${ns} link set ${dev} up`.quiet();
  }
  // IPv6 link-local addresses go through duplicate address detection; until it ends, the first
  // ICMPv6 echoes are dropped (seen: 5-6 of the first 20). Wait for it (about 1-2 s).
  for (let i = 0; i < 60; i++) {
    const t = await Promise.all([near, far].map((ns) => $`ip -n ${ns} -6 addr show tentative`.quiet().text()));
    if (t.every((x) => x.trim() === "")) break;
    await Bun.sleep(50);
  }
  return {
    near, far, nearIp: `${sub}.1`, farIp: `${sub}.2`, nearIp6: `${sub6}:1`, farIp6: `${sub6}:2`, unusedIp: `${sub}.99`,
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
