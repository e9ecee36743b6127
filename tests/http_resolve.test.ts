/**
 * The HTTP resolve phase against a DNS server that answers after a known delay, inside a network
 * namespace with its own resolv.conf (tests/helpers/dnsns.ts). Also shows that names are resolved
 * every round (no cache hides the phase) and that NXDOMAIN is failed_reason "resolve".
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createDnsNamespace, type DnsNamespace } from "./helpers/dnsns.ts";
import { netnsAvailable } from "./helpers/netns.ts";
import { ROOT, run, skipReason } from "./helpers/procs.ts";

const available = await netnsAvailable();
if (!available) skipReason("http_resolve needs root and ip netns (a namespace with its own resolv.conf)");
const DELAY_MS = 100;

describe.skipIf(!available)("resolve phase with a delaying DNS server", () => {
  let dns: DnsNamespace;
  beforeAll(async () => {
    dns = await createDnsNamespace("dns", DELAY_MS);
  });
  afterAll(async () => {
    await dns?.remove();
  });

  const probeInNs = async (url: string, rounds: number) => {
    const r = await run([...dns.inNs, process.execPath, `${ROOT}tests/fixtures/http_probe.ts`, JSON.stringify({ url, rounds })]);
    if (r.code !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as { success?: boolean; failedReason?: string; resolveSeconds?: number; connectSeconds?: number }[];
  };

  test("every round resolves again and its resolve phase holds the DNS server's delay", async () => {
    const results = await probeInNs("http://delayed.test:{port}/ok", 6);
    console.log(`resolve phases (ms) for a ${DELAY_MS} ms DNS delay: ${results.map((r) => (r.resolveSeconds! * 1000).toFixed(2)).join(" ")}`);
    for (const r of results) expect(r.success).toBe(true);
    // No cache hides the phase: every round waits for the DNS server again. How close the phase is
    // to the delay is shown by bench/http.ts (resolve row, against curl and blackbox_exporter).
    for (const r of results) {
      expect(r.resolveSeconds!).toBeGreaterThanOrEqual(DELAY_MS / 1000 - 0.002);
      expect(r.resolveSeconds!).toBeGreaterThan(Math.max(r.connectSeconds ?? 0, (r as { processingSeconds?: number }).processingSeconds ?? 0));
    }
  });

  test("NXDOMAIN fails with failed_reason resolve and no later phase", async () => {
    const [r] = await probeInNs("http://nx.test:{port}/ok", 1);
    expect([r!.success ?? false, r!.failedReason]).toEqual([false, "resolve"]);
    expect(r!.connectSeconds ?? 0).toBe(0);
  });
});
