/**
 * The dns kind's resolve phase: the DNS server's own name resolved with preferred_ip_protocol and
 * ip_protocol_fallback (lib/probes/resolve.ts). Runs the prober in a network namespace whose
 * /etc/hosts (`ip netns exec` bind-mounts /etc/netns/NAME/hosts) holds names with IPv4, IPv6 or
 * both, and whose only interface is its loopback: test servers on its 127.0.0.1 and ::1 on the
 * same port show which address each probe went to.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { $ } from "bun";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { netnsAvailable } from "./helpers/netns.ts";
import { ROOT, run, skipReason } from "./helpers/procs.ts";

const available = await netnsAvailable();
if (!available) skipReason("dns_probe_resolve needs root and ip netns (a namespace with its own /etc/hosts)");

const NS = `pm-dnsres-${process.pid}`;

/** Runs in the namespace: servers on 127.0.0.1:5353 and [::1]:5353, one probe per case, JSON out. */
const SCRIPT = `
import { startDnsServer } from "${ROOT}tests/helpers/dns_server.ts";
import { dnsKind } from "${ROOT}lib/probes/dns/kind.ts";
import { DnsProber } from "${ROOT}lib/probes/dns/prober.ts";
const cases = JSON.parse(process.argv[1]);
const v4 = await startDnsServer("127.0.0.1", { port: 5353 });
const v6 = await startDnsServer("::1", { port: 5353 });
const out = [];
for (const [target, keys] of cases) {
  const [n4, n6] = [v4.queries.length, v6.queries.length];
  const r = await new DnsProber().probe(dnsKind.target("r", target, dnsKind.moduleSchema("/").parse({ query_name: "example.com", query_type: "A", ...keys })));
  out.push({ success: r.success, failedReason: r.failedReason, error: r.error, resolveSeconds: r.resolveSeconds, server: v4.queries.length > n4 ? "127.0.0.1" : v6.queries.length > n6 ? "::1" : "" });
}
await v4.close(); await v6.close();
console.log(JSON.stringify(out));
`;

type Outcome = { success: boolean; failedReason: string; error: string; resolveSeconds: number; server: string };

async function probeInNs(cases: [string, Record<string, unknown>][]): Promise<Outcome[]> {
  const r = await run(["ip", "netns", "exec", NS, process.execPath, "-e", SCRIPT, JSON.stringify(cases)]);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

describe.skipIf(!available)("preferred_ip_protocol and ip_protocol_fallback for the DNS server's name", () => {
  beforeAll(async () => {
    await $`ip netns add ${NS}`.quiet();
    await $`ip -n ${NS} link set lo up`.quiet();
    mkdirSync(`/etc/netns/${NS}`, { recursive: true });
    writeFileSync(`/etc/netns/${NS}/hosts`, "127.0.0.1 localhost v4only.test dual.test\n::1 v6only.test dual.test\n");
    // Names not in hosts go to a resolver on the namespace's loopback where nothing listens.
    writeFileSync(`/etc/netns/${NS}/resolv.conf`, "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n");
  });
  afterAll(async () => {
    await $`ip netns del ${NS}`.quiet().nothrow();
    rmSync(`/etc/netns/${NS}`, { recursive: true, force: true });
  });

  test("each preference picks its family; fallback takes the other one; no fallback fails as resolve", async () => {
    const out = await probeInNs([
      ["dual.test:5353", { preferred_ip_protocol: "ip4" }],
      ["dual.test:5353", { preferred_ip_protocol: "ip6" }],
      ["v6only.test:5353", { preferred_ip_protocol: "ip4" }],
      ["v6only.test:5353", { preferred_ip_protocol: "ip4", ip_protocol_fallback: false }],
      ["v4only.test:5353", { preferred_ip_protocol: "ip6", ip_protocol_fallback: false }],
      ["v4only.test:5353", {}],
      ["missing.test:5353", {}],
    ]);
    const brief = out.map((o) => ({ success: o.success, failedReason: o.failedReason, server: o.server }));
    expect(brief).toEqual([
      { success: true, failedReason: "", server: "127.0.0.1" },
      { success: true, failedReason: "", server: "::1" },
      { success: true, failedReason: "", server: "::1" },
      { success: false, failedReason: "resolve", server: "" },
      { success: false, failedReason: "resolve", server: "" },
      { success: true, failedReason: "", server: "127.0.0.1" },
      { success: false, failedReason: "resolve", server: "" },
    ]);
    expect(out[3]!.error).toBe("no ip4 address for v6only.test");
    expect(out[4]!.error).toBe("no ip6 address for v4only.test");
    for (const o of out.filter((x) => x.success)) expect(o.resolveSeconds).toBeGreaterThan(0);
  });
});
