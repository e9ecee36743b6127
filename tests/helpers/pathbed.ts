/**
 * The path test bed: four namespaces in a line, agent → r1 → r2 → target, with IPv4 and IPv6
 * forwarding on the two routers and static routes, so TTL 1 expires at r1, TTL 2 at r2 and TTL 3
 * reaches the target. The routers' ICMP rate limits are off, so every expired probe is answered
 * (real routers rate-limit; `bench/trace.ts` says so next to mtr's numbers). Needs root and
 * iproute2; everything lives inside the namespaces it creates and removes.
 */
import { $ } from "bun";

export interface PathBed {
  agent: string;
  r1: string;
  r2: string;
  target: string;
  /** Addresses: the agent's, each router's address facing the agent (what answers Time Exceeded), the target's. */
  agentIp: string;
  r1Ip: string;
  r2Ip: string;
  targetIp: string;
  agentIp6: string;
  r1Ip6: string;
  r2Ip6: string;
  targetIp6: string;
  /** `ip netns exec <agent>` as an argv prefix. */
  inAgent: string[];
  /** Makes the target stop (true) or start (false) answering echo requests, IPv4 and IPv6. */
  silenceTarget(silent: boolean): Promise<void>;
  remove(): Promise<void>;
}

let counter = 0;

/** Builds the bed; `tag` goes into the namespace names (pm-<tag>-{a,r1,r2,t}-N). */
export async function createPathBed(tag: string): Promise<PathBed> {
  const n = ((process.pid + counter++) % 200) + 20;
  const ns = { agent: `pm-${tag}-a-${n}`, r1: `pm-${tag}-r1-${n}`, r2: `pm-${tag}-r2-${n}`, target: `pm-${tag}-t-${n}` };
  const v4 = (link: number, host: number) => `10.${232 + link}.${n}.${host}`;
  const v6 = (link: number, host: number) => `fd00:${(0x232 + link).toString(16)}:${n.toString(16)}::${host}`;
  const chain = [ns.agent, ns.r1, ns.r2, ns.target];
  for (const x of chain) {
    await $`ip netns add ${x}`.quiet();
    await $`ip -n ${x} link set lo up`.quiet();
  }
  // Link k joins chain[k] (host 1) and chain[k + 1] (host 2).
  for (let k = 0; k < 3; k++) {
    const [left, right] = [`pmp${n}l${k}`, `pmp${n}r${k}`];
    await $`ip link add ${left} netns ${chain[k]} type veth peer name ${right} netns ${chain[k + 1]}`.quiet();
    await $`ip -n ${chain[k]} addr add ${v4(k, 1)}/24 dev ${left}`.quiet();
    await $`ip -n ${chain[k + 1]} addr add ${v4(k, 2)}/24 dev ${right}`.quiet();
    await $`ip -n ${chain[k]} addr add ${v6(k, 1)}/64 dev ${left} nodad`.quiet();
    await $`ip -n ${chain[k + 1]} addr add ${v6(k, 2)}/64 dev ${right} nodad`.quiet();
    await $`ip -n ${chain[k]} link set ${left} up`.quiet();
    await $`ip -n ${chain[k + 1]} link set ${right} up`.quiet();
  }
  await $`ip -n ${ns.agent} route add default via ${v4(0, 2)}`.quiet();
  await $`ip -n ${ns.agent} -6 route add default via ${v6(0, 2)}`.quiet();
  await $`ip -n ${ns.r1} route add ${v4(2, 0)}/24 via ${v4(1, 2)}`.quiet();
  await $`ip -n ${ns.r1} -6 route add ${v6(2, 0)}/64 via ${v6(1, 2)}`.quiet();
  await $`ip -n ${ns.r2} route add ${v4(0, 0)}/24 via ${v4(1, 1)}`.quiet();
  await $`ip -n ${ns.r2} -6 route add ${v6(0, 0)}/64 via ${v6(1, 1)}`.quiet();
  await $`ip -n ${ns.target} route add default via ${v4(2, 1)}`.quiet();
  await $`ip -n ${ns.target} -6 route add default via ${v6(2, 1)}`.quiet();
  for (const r of [ns.r1, ns.r2]) {
    await $`ip netns exec ${r} sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0`.quiet();
  }
  // Unprivileged ping sockets for every group inside the agent's namespace (the IP_RECVERR path).
  await $`ip netns exec ${ns.agent} sysctl -qw net.ipv4.ping_group_range=${"0 2147483647"}`.quiet();
  const bed: PathBed = {
    ...ns,
    agentIp: v4(0, 1), r1Ip: v4(0, 2), r2Ip: v4(1, 2), targetIp: v4(2, 2),
    agentIp6: v6(0, 1), r1Ip6: v6(0, 2), r2Ip6: v6(1, 2), targetIp6: v6(2, 2),
    inAgent: ["ip", "netns", "exec", ns.agent],
    async silenceTarget(silent) {
      const v = silent ? 1 : 0;
      await $`ip netns exec ${ns.target} sysctl -qw net.ipv4.icmp_echo_ignore_all=${v} net.ipv6.icmp.echo_ignore_all=${v}`.quiet();
    },
    async remove() {
      for (const x of chain) await $`ip netns del ${x}`.quiet().nothrow();
    },
  };
  // The path works end to end before anyone measures it (neighbour discovery, routes).
  for (let i = 0; i < 100; i++) {
    const ok = await Promise.all([bed.targetIp, bed.targetIp6].map((ip) => $`ip netns exec ${ns.agent} ping -c1 -W1 ${ip}`.quiet().nothrow()));
    if (ok.every((r) => r.exitCode === 0)) break;
    await Bun.sleep(50);
  }
  return bed;
}
