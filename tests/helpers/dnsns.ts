/**
 * A network namespace with its own resolver: /etc/netns/NAME/resolv.conf (bind-mounted over
 * /etc/resolv.conf by `ip netns exec`) points at tests/fixtures/dns.ts on the namespace's
 * 127.0.0.1, which answers after a set delay. Lets resolve-phase tests and benches measure a known
 * DNS delay without any traffic leaving the machine. Needs root.
 */
import { $ } from "bun";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { ROOT, start, type Proc } from "./procs.ts";

export interface DnsNamespace {
  ns: string;
  /** `ip netns exec NAME` as an argv prefix. */
  inNs: string[];
  dnsDelayMs: number;
  remove(): Promise<void>;
}

/** Creates the namespace (loopback up), its resolv.conf, and starts the delaying DNS server. */
export async function createDnsNamespace(tag: string, dnsDelayMs: number): Promise<DnsNamespace> {
  const ns = `pm-${tag}-${process.pid}`;
  await $`ip netns add ${ns}`.quiet();
  let dns: Proc | undefined;
  const remove = async () => {
    await dns?.kill();
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    await $`ip netns del ${ns}`.quiet().nothrow();
  };
  try {
    await $`ip -n ${ns} link set lo up`.quiet();
    mkdirSync(`/etc/netns/${ns}`, { recursive: true });
    writeFileSync(`/etc/netns/${ns}/resolv.conf`, "nameserver 127.0.0.1\noptions attempts:1 timeout:5\n");
    const inNs = ["ip", "netns", "exec", ns];
    dns = start([process.execPath, `${ROOT}tests/fixtures/dns.ts`, JSON.stringify({ delayMs: dnsDelayMs })], inNs);
    for (let i = 0; i < 100 && !dns.output().includes("ready"); i++) await Bun.sleep(50);
    if (!dns.output().includes("ready")) throw new Error(`DNS fixture did not start: ${dns.output()}`);
    return { ns, inNs, dnsDelayMs, remove };
  } catch (e) {
    await remove();
    throw e;
  }
}
