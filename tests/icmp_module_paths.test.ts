/**
 * The icmp kind's blackbox_exporter options on real paths, all inside network namespaces created
 * and removed here (root): ttl through two routers (tests/helpers/pathbed.ts), dont_fragment with
 * a 1280-byte link between the routers (a path-MTU check; the target's reassembly counters show
 * what was fragmented), source_ip_address with two addresses on the prober's side (a capture on
 * the far side sees the source), and preferred_ip_protocol with a name that has both families in
 * the namespace's own /etc/hosts. The prober runs inside the namespace, once with an unprivileged
 * ping socket and once with a raw one where both matter. The messages are docs/kinds/icmp.md's.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { $ } from "bun";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createNsPair, netnsAvailable, type NsPair } from "./helpers/netns.ts";
import { createPathBed, type PathBed } from "./helpers/pathbed.ts";
import { ROOT, run, skipReason, start } from "./helpers/procs.ts";

const available = await netnsAvailable();
if (!available) skipReason("icmp_module_paths needs root and ip netns (routers, MTUs and addresses inside test namespaces)");

/** Runs in a namespace: one prober, the cases in order; prints what each round reported. */
const PROBE = `
import { icmpKind } from "${ROOT}lib/probes/icmp/kind.ts";
import { IcmpEngine } from "${ROOT}lib/probes/icmp/engine.ts";
import { IcmpEchoProber } from "${ROOT}lib/probes/icmp/prober.ts";
const spec = JSON.parse(process.argv[1]);
const prober = new IcmpEchoProber(new IcmpEngine(spec.prefer));
const out = [];
for (const [target, keys] of spec.cases) {
  const r = await prober.probe(icmpKind.target("t", target, icmpKind.moduleSchema("/").parse({ packet_count: 4, interval: "5ms", timeout: "1s", ...keys })));
  out.push({ sent: r.sent, received: r.received, error: r.error, resolvedIp: r.resolvedIp });
}
console.log(JSON.stringify({ out, socket: prober.engine.describe(spec.v6 ?? false) }));
prober.close();
process.exit(0);
`;

type Round = { sent: number; received: number; error: string; resolvedIp: string };

async function probeIn(prefix: string[], prefer: "ping" | "raw" | "auto", cases: [string, Record<string, unknown>][], v6 = false): Promise<Round[]> {
  const r = await run([...prefix, process.execPath, "-e", PROBE, JSON.stringify({ prefer, cases, v6 })]);
  if (r.code !== 0) throw new Error(r.stderr);
  const { out, socket } = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  if (prefer !== "auto") expect(socket.kind).toBe(prefer); // the socket kind this run is about
  return out;
}

/** The reassembled-datagram counter of a namespace (IPv4 Ip ReasmOKs / IPv6 Ip6ReasmOKs). */
async function reassembled(ns: string, v6: boolean): Promise<number> {
  if (v6) return Number(/Ip6ReasmOKs\s+(\d+)/.exec(await $`ip netns exec ${ns} cat /proc/net/snmp6`.text())![1]);
  const [names, values] = (await $`ip netns exec ${ns} cat /proc/net/snmp`.text()).split("\n").filter((l) => l.startsWith("Ip: "));
  return Number(values!.split(" ")[names!.split(" ").indexOf("ReasmOKs")]);
}

/** Forgets every path MTU the agent and the target learned (the routers' "fragmentation needed" / "packet too big"). */
async function flushPmtu(bed: PathBed): Promise<void> {
  for (const ns of [bed.agent, bed.target]) await $`ip -n ${ns} route flush cache && ip -n ${ns} -6 route flush cache`.quiet();
}

describe.skipIf(!available)("ttl and dont_fragment through two routers", () => {
  let bed: PathBed;
  beforeAll(async () => {
    bed = await createPathBed("icmpmod");
    // The link between the routers carries 1280-byte packets at most; the agent's link 1500.
    const n = /-(\d+)$/.exec(bed.agent)![1];
    await $`ip -n ${bed.r1} link set pmp${n}l1 mtu 1280`.quiet();
    await $`ip -n ${bed.r2} link set pmp${n}r1 mtu 1280`.quiet();
  }, 60_000);
  afterAll(async () => {
    await bed?.remove();
  });

  for (const prefer of ["ping", "raw"] as const) {
    test(`${prefer} socket: ttl 1 and 2 end at r1 and r2 with time exceeded; ttl 3 and the default reach the target; an address r1 has no route for gets its unreachable (IPv4 and IPv6)`, async () => {
      const cases: [string, Record<string, unknown>][] = [];
      for (const target of [bed.targetIp, bed.targetIp6]) for (const keys of [{ ttl: 1 }, { ttl: 2 }, { ttl: 3 }, {}]) cases.push([target, keys]);
      const out = await probeIn(bed.inAgent, prefer, cases);
      expect(out.map((o) => [o.sent, o.received, o.error])).toEqual([
        [4, 0, `time exceeded from ${bed.r1Ip} (ttl 1)`], [4, 0, `time exceeded from ${bed.r2Ip} (ttl 2)`], [4, 4, ""], [4, 4, ""],
        [4, 0, `time exceeded from ${bed.r1Ip6} (hop limit 1)`], [4, 0, `time exceeded from ${bed.r2Ip6} (hop limit 2)`], [4, 4, ""], [4, 4, ""],
      ]);
      // The agent's default route leads to r1, which has no route for these. r1's IPv4 "network
      // unreachable" (ip_error) spends the per-host token bucket that its other ICMP errors, with
      // the bed's icmp_ratelimit 0, leave empty; it refills at one message a second.
      await Bun.sleep(1500);
      const nowhere = [bed.targetIp.replace(/^10\.234\./, "10.235."), bed.targetIp6.replace(/^fd00:234:/, "fd00:235:")];
      const unreachable = await probeIn(bed.inAgent, prefer, nowhere.map((t) => [t, { ttl: 64 }]));
      expect(unreachable.map((o) => [o.sent, o.received, o.error])).toEqual([
        [4, 0, `destination unreachable from ${bed.r1Ip} (network unreachable)`], [4, 0, `destination unreachable from ${bed.r1Ip6} (no route to destination)`],
      ]);
    }, 60_000);

    test(`${prefer} socket, IPv4: without dont_fragment a request above the path MTU is fragmented and answered; with it the round fails, first by the router's "fragmentation needed", then by the host's EMSGSIZE; one that fits succeeds`, async () => {
      const t = bed.targetIp;
      await flushPmtu(bed);
      const before = await reassembled(bed.target, false);
      const [plain] = await probeIn(bed.inAgent, prefer, [[t, { payload_size: 1400 }]]);
      expect(plain).toEqual({ sent: 4, received: 4, error: "", resolvedIp: t });
      expect((await reassembled(bed.target, false)) - before).toBeGreaterThanOrEqual(4); // r1 fragmented every request
      await flushPmtu(bed);
      const mid = await reassembled(bed.target, false);
      const out = await probeIn(bed.inAgent, prefer, [
        [t, { payload_size: 1400, dont_fragment: true }], // the path MTU is not known yet: r1 answers
        [t, { payload_size: 1400, dont_fragment: true }], // now it is: the host refuses
        [t, { payload_size: 1253, dont_fragment: true }], // 1281 bytes: one too many
        [t, { payload_size: 1252, dont_fragment: true }], // 1280 bytes: fits exactly
      ]);
      expect(out.map((o) => [o.sent, o.received, o.error])).toEqual([
        [4, 0, `fragmentation needed from ${bed.r1Ip}: next-hop MTU 1280, the request is 1428 bytes with dont_fragment`],
        [4, 0, `dont_fragment: the 1428-byte request does not fit the path MTU 1280 to ${t} (sendto: Message too long (errno 90))`],
        [4, 0, `dont_fragment: the 1281-byte request does not fit the path MTU 1280 to ${t} (sendto: Message too long (errno 90))`],
        [4, 4, ""],
      ]);
      expect(await reassembled(bed.target, false)).toBe(mid); // nothing was fragmented on the way
    }, 60_000);

    test(`${prefer} socket, IPv6: without dont_fragment the hosts fragment to the path MTU once a router told them; dont_fragment fails with the router's "packet too big", then the host's EMSGSIZE; one that fits succeeds`, async () => {
      const t = bed.targetIp6;
      await flushPmtu(bed);
      const before = await reassembled(bed.target, true);
      // IPv6 routers never fragment: the first request dies at r1 (packet too big to the agent),
      // the first reply at r2 (to the target); from then on both hosts fragment.
      const plain = await probeIn(bed.inAgent, prefer, [[t, { payload_size: 1400 }], [t, { payload_size: 1400 }]]);
      expect(plain.map((o) => [o.sent, o.received, o.error])).toEqual([[4, 2, ""], [4, 4, ""]]);
      expect((await reassembled(bed.target, true)) - before).toBeGreaterThanOrEqual(4 + 3);
      await flushPmtu(bed);
      const out = await probeIn(bed.inAgent, prefer, [
        [t, { payload_size: 1400, dont_fragment: true }],
        [t, { payload_size: 1400, dont_fragment: true }],
        [t, { payload_size: 1232, dont_fragment: true }], // 1280 bytes with the 40-byte IPv6 header
      ]);
      expect(out.map((o) => [o.sent, o.received, o.error])).toEqual([
        [4, 0, `packet too big from ${bed.r1Ip6}: next-hop MTU 1280, the request is 1448 bytes with dont_fragment`],
        [4, 0, `dont_fragment: the 1448-byte request does not fit the path MTU 1280 to ${t} (sendto: Message too long (errno 90))`],
        [4, 4, ""],
      ]);
    }, 60_000);
  }
});

/** Runs in the far namespace: records the source of every echo request (both families) until SIGTERM, then prints them. */
const CAPTURE = `
import { IcmpSocket, datagramSource } from "${ROOT}lib/probes/icmp/socket.ts";
import { ipText } from "${ROOT}lib/probes/icmp/icmp_errors.ts";
const seen = [];
const socks = [false, true].map((v6) => new IcmpSocket(v6, 1 << 20, "raw", "requests"));
const timer = setInterval(() => socks.forEach((s) => s.drain((d) => seen.push(ipText(datagramSource(d, s.v6).slice())))), 2);
process.on("SIGTERM", () => { clearInterval(timer); socks.forEach((s) => s.drain((d) => seen.push(ipText(datagramSource(d, s.v6).slice())))); console.log(JSON.stringify(seen)); process.exit(0); });
console.log("ready");
`;

describe.skipIf(!available)("source_ip_address with two addresses on the prober's side", () => {
  let pair: NsPair;
  let second: string, second6: string;
  beforeAll(async () => {
    pair = await createNsPair("icmpsrc");
    second = pair.nearIp.replace(/\.1$/, ".3");
    second6 = pair.nearIp6.replace(/::1$/, "::3");
    const dev = (await $`ip -n ${pair.near} -o link show type veth`.text()).split(":")[1]!.trim().replace(/@.*/, "");
    await $`ip -n ${pair.near} addr add ${second}/24 dev ${dev}`.quiet();
    await $`ip -n ${pair.near} addr add ${second6}/64 dev ${dev} nodad`.quiet();
  }, 60_000);
  afterAll(async () => {
    await pair?.remove();
  });

  for (const prefer of ["ping", "raw"] as const) {
    test(`${prefer} socket: the far side sees the chosen source, IPv4 and IPv6; without one the kernel's (IPv4: the primary address); an address the prober does not have fails the round and sends nothing`, async () => {
      if (prefer === "ping") await $`ip netns exec ${pair.near} sysctl -qw net.ipv4.ping_group_range=${"0 2147483647"}`.quiet();
      else await $`ip netns exec ${pair.near} sysctl -qw net.ipv4.ping_group_range=${"1 0"}`.quiet();
      const capture = start([process.execPath, "-e", CAPTURE], pair.inFar);
      for (let i = 0; i < 100 && !capture.output().includes("ready"); i++) await Bun.sleep(50);
      const missing = pair.nearIp.replace(/\.1$/, ".77");
      const out = await probeIn(pair.inNear, prefer, [
        [pair.farIp, { source_ip_address: second }],
        [pair.farIp, { source_ip_address: pair.nearIp }],
        [pair.farIp, {}],
        [pair.farIp6, { source_ip_address: second6 }],
        [pair.farIp6, { source_ip_address: pair.nearIp6 }],
        [pair.farIp, { source_ip_address: missing }],
      ]);
      capture.proc.kill("SIGTERM");
      await capture.exited;
      const seen: string[] = JSON.parse(capture.output().trim().split("\n").at(-1)!);
      expect(out.map((o) => [o.sent, o.received, o.error])).toEqual([
        [4, 4, ""], [4, 4, ""], [4, 4, ""], [4, 4, ""], [4, 4, ""],
        [0, 0, `source_ip_address ${missing}: bind: Cannot assign requested address (errno 99): not an address of this host (or of this network namespace)`],
      ]);
      // In order: 4 from the second address, 4 + 4 from the first (chosen, then the kernel's), 4 from ::3, 4 from ::1.
      expect(seen).toEqual([...Array(4).fill(second), ...Array(8).fill(pair.nearIp), ...Array(4).fill(second6), ...Array(4).fill(pair.nearIp6)]);
    }, 60_000);
  }
});

describe.skipIf(!available)("preferred_ip_protocol and ip_protocol_fallback for a name", () => {
  const NS = `pm-icmpres-${process.pid}`;
  beforeAll(async () => {
    await $`ip netns add ${NS}`.quiet();
    await $`ip -n ${NS} link set lo up`.quiet();
    mkdirSync(`/etc/netns/${NS}`, { recursive: true });
    writeFileSync(`/etc/netns/${NS}/hosts`, "127.0.0.1 localhost v4only.test dual.test\n::1 v6only.test dual.test\n");
    writeFileSync(`/etc/netns/${NS}/resolv.conf`, "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n");
  });
  afterAll(async () => {
    await $`ip netns del ${NS}`.quiet().nothrow();
    rmSync(`/etc/netns/${NS}`, { recursive: true, force: true });
  });

  test("a name with both families: ip6 pings ::1, ip4 (and the default) 127.0.0.1; fallback takes the other family, without it the round fails as resolve; a source picks nothing by itself", async () => {
    const out = await probeIn(["ip", "netns", "exec", NS], "raw", [
      ["dual.test", { preferred_ip_protocol: "ip6" }],
      ["dual.test", { preferred_ip_protocol: "ip4" }],
      ["dual.test", {}],
      ["v6only.test", { preferred_ip_protocol: "ip4" }],
      ["v6only.test", { preferred_ip_protocol: "ip4", ip_protocol_fallback: false }],
      ["v4only.test", { preferred_ip_protocol: "ip6", ip_protocol_fallback: false }],
      ["dual.test", { preferred_ip_protocol: "ip6", source_ip_address: "::1" }],
      ["dual.test", { source_ip_address: "::1" }],
    ]);
    expect(out.map((o) => [o.resolvedIp, o.received, o.error])).toEqual([
      ["::1", 4, ""],
      ["127.0.0.1", 4, ""],
      ["127.0.0.1", 4, ""],
      ["::1", 4, ""],
      ["", 0, "resolve: no ip4 address for v6only.test"],
      ["", 0, "resolve: no ip6 address for v4only.test"],
      ["::1", 4, ""],
      ["127.0.0.1", 0, "source_ip_address ::1 is not an IPv4 address and the target 127.0.0.1 is: the families must match (preferred_ip_protocol picks a name's family)"],
    ]);
  }, 60_000);
});
