/**
 * nftables faults inside ONE network namespace (the test's own; never the host's): cut it off,
 * drop one TCP port, lose only the answers from a port, drop a share of packets at random (sent,
 * received or routed), and count the ICMP echo requests that leave it. Everything lives in two
 * tables of that namespace (`inet pmfault` for drops, `inet pmcount` for counting) and goes away
 * with the namespace; restore() empties the drop chains.
 *
 * The counting chain hooks output at priority 100, after the drop chains (priority 0): a packet
 * dropped by a fault never reaches it, so the counter reads what actually left.
 */
import { $ } from "bun";

/** True when `nft` is installed (Debian package nftables). */
export function nftInstalled(): boolean {
  return Bun.which("nft") !== null;
}

/** Runs an nft script inside `ns`. @throws Error with nft's message */
export async function nft(ns: string, script: string): Promise<string> {
  const r = await $`ip netns exec ${ns} nft -f - < ${new Response(script)}`.quiet().nothrow();
  if (r.exitCode !== 0) throw new Error(`nft in ${ns} failed (${r.exitCode}): ${r.stderr.toString().trim()}\n${script}`);
  return r.stdout.toString();
}

/** Runs one nft command (argv) inside `ns`. */
async function nftCmd(ns: string, args: string[]): Promise<string> {
  const r = await $`ip netns exec ${ns} nft ${args}`.quiet().nothrow();
  if (r.exitCode !== 0) throw new Error(`nft ${args.join(" ")} in ${ns} failed: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

const ensured = new Set<string>();

/** Creates the drop table with empty input and output chains (policy accept), once per namespace. */
async function ensureFaultTable(ns: string): Promise<void> {
  if (ensured.has(ns)) return;
  await nft(ns, [
    "table inet pmfault {",
    "  chain input { type filter hook input priority 0; policy accept; }",
    "  chain output { type filter hook output priority 0; policy accept; }",
    "}",
  ].join("\n"));
  ensured.add(ns);
}

/** Cuts `ns` off: every packet in and out is dropped, except on lo. */
export async function cut(ns: string): Promise<void> {
  await ensureFaultTable(ns);
  await nft(ns, [
    'add rule inet pmfault input iifname != "lo" drop',
    'add rule inet pmfault output oifname != "lo" drop',
  ].join("\n"));
}

/** Removes every fault of `ns` (cut, port drops): the network works again. */
export async function restore(ns: string): Promise<void> {
  await ensureFaultTable(ns);
  await nft(ns, "flush chain inet pmfault input\nflush chain inet pmfault output");
}

/**
 * Drops TCP traffic of `port` (a server's port, seen from a client namespace):
 * - "both": requests to it and answers from it, so nothing gets through (connections time out);
 * - "refuse": requests to it are answered with a TCP reset, as by a host whose server is down
 *   (connections fail at once; the reset comes back over lo, so nothing inbound is dropped);
 * - "answers": only the answers: packets FROM the port that carry data. Connection set-up and
 *   acknowledgements pass, so the request reaches the server (which handles it) and the client
 *   never hears the answer (its deadline runs out). A pure ACK or SYN-ACK with options is at most
 *   60 bytes of IPv4; any HTTP answer is far above 120.
 * `host` limits it to one peer address (IPv4).
 */
export async function dropTcpPort(ns: string, port: number, mode: "both" | "refuse" | "answers", host?: string): Promise<void> {
  await ensureFaultTable(ns);
  const peerIn = host ? `ip saddr ${host} ` : "";
  const peerOut = host ? `ip daddr ${host} ` : "";
  const lines = mode === "both"
    ? [`add rule inet pmfault output ${peerOut}tcp dport ${port} drop`, `add rule inet pmfault input ${peerIn}tcp sport ${port} drop`]
    : mode === "refuse"
      ? [`add rule inet pmfault output ${peerOut}tcp dport ${port} reject with tcp reset`]
      : [`add rule inet pmfault input ${peerIn}tcp sport ${port} ip length > 120 drop`];
  await nft(ns, lines.join("\n"));
}

/**
 * Drops `percent` % (an integer 0..100) of one direction's packets in `ns`, each packet at random
 * (`numgen random mod 100 < percent drop`): "output" what the namespace sends (its egress, lo
 * spared), "input" what it receives (its ingress, lo spared), "forward" what it routes (a router
 * namespace). `peers` (IPv4 addresses) limits it to packets to them (output, forward) or from them
 * (input). restore() removes input and output rules with the other faults; the returned function
 * removes this rule alone (any hook).
 */
export async function dropRandom(ns: string, hook: "input" | "output" | "forward", percent: number, peers?: string[]): Promise<() => Promise<void>> {
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new Error(`percent ${percent}: an integer 0..100`);
  await ensureFaultTable(ns);
  if (hook === "forward") await nft(ns, "add chain inet pmfault forward { type filter hook forward priority 0; policy accept; }");
  const dev = hook === "output" ? 'oifname != "lo" ' : hook === "input" ? 'iifname != "lo" ' : "";
  const peer = peers?.length ? `ip ${hook === "input" ? "saddr" : "daddr"} { ${peers.join(", ")} } ` : "";
  // --echo --handle prints the rule with its handle, for the remover.
  const r = await $`ip netns exec ${ns} nft -e -a -f - < ${new Response(`add rule inet pmfault ${hook} ${dev}${peer}numgen random mod 100 < ${percent} drop\n`)}`.quiet().nothrow();
  if (r.exitCode !== 0) throw new Error(`nft in ${ns} failed (${r.exitCode}): ${r.stderr.toString().trim()}`);
  const handle = /# handle (\d+)/.exec(r.stdout.toString())?.[1];
  if (!handle) throw new Error(`nft in ${ns} did not echo the rule's handle: ${r.stdout.toString().trim()}`);
  return async () => {
    // Gone already when restore() flushed the chain: that is fine.
    await nftCmd(ns, ["delete", "rule", "inet", "pmfault", hook, "handle", handle]).catch(() => {});
  };
}

/** Packets dropped so far by the fault rules (for diagnostics). */
export async function faultRules(ns: string): Promise<string> {
  return nftCmd(ns, ["list", "table", "inet", "pmfault"]).catch((e) => String(e));
}

/** A counter of ICMP echo requests that left a namespace (IPv4 and IPv6). */
export interface EchoCounter {
  /** Echo requests counted since the counter was made. */
  read(): Promise<number>;
}

/**
 * Starts counting the echo requests leaving `ns`: those that went on the wire (not to lo), or with
 * `loopback` every one, lo included (targets on the namespace's own 127.0.0.0/8).
 */
export async function echoRequestCounter(ns: string, opts: { loopback?: boolean } = {}): Promise<EchoCounter> {
  const dev = opts.loopback ? "" : 'oifname != "lo" ';
  await nft(ns, [
    "table inet pmcount {",
    "  counter echo_out { }",
    "  chain output {",
    "    type filter hook output priority 100; policy accept;",
    `    ${dev}icmp type echo-request counter name "echo_out"`,
    `    ${dev}icmpv6 type echo-request counter name "echo_out"`,
    "  }",
    "}",
  ].join("\n"));
  return {
    async read() {
      const j = JSON.parse(await nftCmd(ns, ["-j", "list", "counter", "inet", "pmcount", "echo_out"])) as { nftables: { counter?: { packets: number } }[] };
      const c = j.nftables.find((x) => x.counter)?.counter;
      if (!c) throw new Error(`no counter echo_out in ${ns}`);
      return c.packets;
    },
  };
}

/** Forgets what this module knows about `ns` (call when the namespace is removed). */
export function forgetNamespace(ns: string): void {
  ensured.delete(ns);
}
