/**
 * A network namespace with its own resolver: /etc/netns/NAME/resolv.conf (bind-mounted over
 * /etc/resolv.conf by `ip netns exec`) points at tests/fixtures/dns.ts on the namespace's
 * 127.0.0.1, which answers after a set delay. Lets resolve-phase tests and benches measure a known
 * DNS delay without any traffic leaving the machine. Needs root.
 */
import { $ } from "bun";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { ROOT, start } from "./procs.ts";

export interface DnsNamespace {
  ns: string;
  /** `ip netns exec NAME` as an argv prefix. */
  inNs: string[];
  dnsDelayMs: number;
  remove(): Promise<void>;
}

/**
 * Gives namespace `ns` (loopback up) its own resolver: /etc/netns/NS/resolv.conf pointing at the
 * delaying DNS fixture, started on the namespace's 127.0.0.1. Processes started with
 * `ip netns exec NS` afterwards use it. @returns a function that stops it and removes the file
 */
export async function serveDns(ns: string, dnsDelayMs: number): Promise<() => Promise<void>> {
  mkdirSync(`/etc/netns/${ns}`, { recursive: true });
  writeFileSync(`/etc/netns/${ns}/resolv.conf`, "nameserver 127.0.0.1\noptions attempts:1 timeout:5\n");
  const dns = start([process.execPath, `${ROOT}tests/fixtures/dns.ts`, JSON.stringify({ delayMs: dnsDelayMs })], ["ip", "netns", "exec", ns]);
  const stop = async () => {
    await dns.kill();
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  };
  for (let i = 0; i < 100 && !dns.output().includes("ready"); i++) await Bun.sleep(50);
  if (!dns.output().includes("ready")) {
    await stop();
    throw new Error(`DNS fixture did not start: ${dns.output()}`);
  }
  return stop;
}

/** Creates the namespace (loopback up), its resolv.conf, and starts the delaying DNS server. */
export async function createDnsNamespace(tag: string, dnsDelayMs: number): Promise<DnsNamespace> {
  const ns = `pm-${tag}-${process.pid}`;
  await $`ip netns add ${ns}`.quiet();
  let stopDns: (() => Promise<void>) | undefined;
  const remove = async () => {
    await stopDns?.();
    await $`ip netns del ${ns}`.quiet().nothrow();
  };
  try {
    await $`ip -n ${ns} link set lo up`.quiet();
    stopDns = await serveDns(ns, dnsDelayMs);
    return { ns, inNs: ["ip", "netns", "exec", ns], dnsDelayMs, remove };
  } catch (e) {
    await remove();
    throw e;
  }
}
