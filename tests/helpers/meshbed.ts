/**
 * The fault bed: a namespace "switch" holding a Linux bridge, a namespace "core" (servers, Redis)
 * and one namespace per agent host, each joined to the bridge by a veth, all in one IPv4 /24:
 * 10.241.N.0/24, core .1, hosts .11, .12, ... (10.231.* and 10.232-235.* belong to netns.ts and
 * pathbed.ts). Namespace names carry the process id and a counter, so parallel runs and several
 * beds of one run never collide; interfaces are created inside the bed's namespaces only. Needs root and iproute2; every address lives inside
 * the namespaces this module creates, and remove() deletes them (nft tables go with them).
 *
 * The test process itself stays outside: it reads HTTP ports of 127.0.0.1 inside core through a
 * Unix socket (tests/helpers/nsproxy.ts), which crosses namespaces without any address.
 */
import { $ } from "bun";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { forgetNamespace } from "./nft.ts";
import { AGENT_BIN, ROOT, SERVER_BIN, parseExposition, run, start, waitFor, type Proc, type Sample } from "./procs.ts";

/** One namespace of the bed. */
export interface BedHost {
  name: string;
  ns: string;
  ip: string;
  /** `ip netns exec <ns>` as an argv prefix. */
  in: string[];
}

export interface MeshBed {
  /** "10.241.N" */
  subnet: string;
  switchNs: string;
  core: BedHost;
  hosts: BedHost[];
  host(name: string): BedHost;
  /** Runs a command to completion inside a namespace. */
  exec(ns: string, cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Starts a long-running process inside a namespace (stopped by killAll() of procs.ts). */
  start(ns: string, cmd: string[]): Proc;
  /** fetch() of http://127.0.0.1:PORT/PATH inside core. A server that is down answers 502. */
  coreFetch(port: number, path: string, init?: RequestInit): Promise<Response>;
  /** /metrics of a server in core, parsed. @throws Error when the server does not answer */
  coreMetrics(port: number): Promise<Map<string, Sample[]>>;
  /** /metrics text of a server in core. */
  coreMetricsText(port: number): Promise<string>;
  /** Pings `ips` from `ns` until all answer. @throws Error naming the silent ones */
  reach(ns: string, ips: string[], timeoutMs?: number): Promise<void>;
  remove(): Promise<void>;
}

let counter = 0;
const ICMP_TOOL = `${ROOT}tests/helpers/icmp_tool.ts`;
const NSPROXY = `${ROOT}tests/helpers/nsproxy.ts`;

/** True when `ip netns` works here (root with iproute2). */
export async function netnsWorks(): Promise<boolean> {
  if (process.getuid?.() !== 0 || !Bun.which("ip")) return false;
  return (await $`ip netns list`.quiet().nothrow()).exitCode === 0;
}

/**
 * Why the fault tests cannot run here, or "" when they can: root, iproute2 and nftables always,
 * plus the tools named in `also` (redis-server, promtool).
 */
export async function faultBedMissing(also: ("redis-server" | "promtool")[] = []): Promise<string> {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push("root");
  else if (!(await netnsWorks())) missing.push("iproute2 (ip netns)");
  if (!Bun.which("nft")) missing.push("nft (apt-get install nftables)");
  for (const t of also) if (!Bun.which(t)) missing.push(`${t} (apt-get install ${t === "promtool" ? "prometheus" : "redis-server"})`);
  return missing.length ? `needs ${missing.join(", ")}` : "";
}

/**
 * Builds the bed with one host namespace per name (in order: .11, .12, ...), checks that every
 * host reaches core and every other host, and returns it.
 * @param tag short word in the namespace names (pmf-<tag>-<pid>-<n>-<host>)
 * @param opts.subnet the third byte of the subnet (default: from the process id and a counter)
 */
export async function createMeshBed(tag: string, names: string[], opts: { subnet?: number } = {}): Promise<MeshBed> {
  if (names.length > 200) throw new Error("at most 200 hosts");
  const n = ((process.pid % 997) * 7 + counter++) % 250;
  // Addresses never collide across beds (each has its own bridge, inside its own namespaces): a
  // test may fix its subnet (`opts.subnet`) to make addresses, and what depends on them, repeatable.
  const subnet = `10.241.${opts.subnet ?? n}`;
  const nsName = (h: string) => `pmf-${tag}-${process.pid}-${n}-${h}`;
  const switchNs = nsName("sw");
  const mk = (name: string, ip: string): BedHost => ({ name, ns: nsName(name), ip, in: ["ip", "netns", "exec", nsName(name)] });
  const core = mk("core", `${subnet}.1`);
  const hosts = names.map((h, i) => mk(h, `${subnet}.${11 + i}`));
  const all = [core, ...hosts];
  const created: string[] = [];
  const proxies: Proc[] = [];
  const sock = `${tmpdir()}/pmf-${process.pid}-${n}.sock`;
  let proxy: Proc | undefined;

  const remove = async () => {
    for (const p of proxies) await p.kill().catch(() => {});
    for (const ns of created) {
      await $`ip netns del ${ns}`.quiet().nothrow();
      forgetNamespace(ns);
    }
    await $`rm -f ${sock}`.quiet().nothrow();
  };

  try {
    for (const ns of [switchNs, ...all.map((h) => h.ns)]) {
      await $`ip netns add ${ns}`.quiet();
      created.push(ns);
      await $`ip -n ${ns} link set lo up`.quiet();
      // No IPv6 on the bed: no router solicitations or duplicate address detection in the way.
      await $`ip netns exec ${ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1`.quiet().nothrow();
    }
    const br = `pfb${n}`;
    await $`ip -n ${switchNs} link add ${br} type bridge`.quiet();
    await $`ip -n ${switchNs} link set ${br} up`.quiet();
    for (const [i, h] of all.entries()) {
      const [inner, outer] = [`pf${n}h${i}`, `pf${n}s${i}`];
      await $`ip link add ${inner} netns ${h.ns} type veth peer name ${outer} netns ${switchNs}`.quiet();
      await $`ip -n ${switchNs} link set ${outer} master ${br}`.quiet();
      await $`ip -n ${switchNs} link set ${outer} up`.quiet();
      await $`ip -n ${h.ns} addr add ${h.ip}/24 dev ${inner}`.quiet();
      await $`ip -n ${h.ns} link set ${inner} up`.quiet();
    }
  } catch (e) {
    await remove();
    throw e;
  }

  const bed: MeshBed = {
    subnet, switchNs, core, hosts,
    host(name) {
      const h = hosts.find((x) => x.name === name);
      if (!h) throw new Error(`no host ${name} in the bed`);
      return h;
    },
    exec: (ns, cmd) => run(["ip", "netns", "exec", ns, ...cmd]),
    start: (ns, cmd) => start(cmd, ["ip", "netns", "exec", ns]),
    async coreFetch(port, path, init) {
      if (!proxy) {
        proxy = start([process.execPath, NSPROXY, sock], core.in);
        proxies.push(proxy);
        await waitFor("the core namespace's HTTP proxy", 10_000, () => proxy!.output().includes("nsproxy listening"));
      }
      return fetch(`http://core/${port}${path.startsWith("/") ? path : `/${path}`}`, { ...init, unix: sock } as RequestInit);
    },
    async coreMetricsText(port) {
      const r = await bed.coreFetch(port, "/metrics");
      if (!r.ok) throw new Error(`/metrics of core:${port}: ${r.status} ${(await r.text()).slice(0, 200)}`);
      return r.text();
    },
    async coreMetrics(port) {
      return parseExposition(await bed.coreMetricsText(port));
    },
    async reach(ns, ips, timeoutMs = 15_000) {
      const r = await run(["ip", "netns", "exec", ns, process.execPath, ICMP_TOOL, "ping", String(timeoutMs), ...ips]);
      if (r.code !== 0) throw new Error(`from ${ns}: not all of ${ips.join(" ")} answer pings: ${r.stdout.trim()} ${r.stderr.trim()}`);
    },
    remove,
  };

  try {
    // Neighbour resolution and the bridge's forwarding: every host reaches core and every other host.
    await Promise.all(all.map((h) => bed.reach(h.ns, all.filter((o) => o !== h).map((o) => o.ip))));
  } catch (e) {
    await remove();
    throw e;
  }
  return bed;
}

/** Sum of the values of `name` whose labels include `labels`. */
export function total(m: Map<string, Sample[]>, name: string, labels: Record<string, string> = {}): number {
  return (m.get(name) ?? []).filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + Number(s.value), 0);
}

/** The value of the single sample of `name` with `labels`, or undefined when there is none. */
export function gauge(m: Map<string, Sample[]>, name: string, labels: Record<string, string>): number | undefined {
  const s = (m.get(name) ?? []).filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s.length ? Number(s[0]!.value) : undefined;
}

/** A server process in core: RPC on the core address (reachable over the bridge), HTTP on core's 127.0.0.1. */
export interface BedServer {
  /** host:port agents use. */
  rpcAddr: string;
  rpcPort: number;
  webPort: number;
  proc?: Proc;
  /** (Re)starts it with the flags given at creation and waits until /-/ready answers. */
  start(): Promise<void>;
  metrics(): Promise<Map<string, Sample[]>>;
  metricsText(): Promise<string>;
  /** GET of a JSON path (/api/v1/...). */
  json<T = unknown>(path: string): Promise<T>;
}

/**
 * A server in core with short windows for tests (1 s aggregation, series ratio 3 unless `flags`
 * set another): dead after 3 s of silence. `flags` are added (e.g. -server.registry.url).
 */
export function bedServer(bed: MeshBed, rpcPort: number, webPort: number, flags: string[] = []): BedServer {
  const s: BedServer = {
    rpcAddr: `${bed.core.ip}:${rpcPort}`, rpcPort, webPort,
    async start() {
      s.proc = bed.start(bed.core.ns, [
        SERVER_BIN, "-server.rpc.listen.addr", s.rpcAddr, "-server.rpc.insecure", "-server.http.listen.addr", `127.0.0.1:${webPort}`,
        "-server.aggregation.interval", "1s", ...(flags.includes("-server.series.cache.ratio") ? [] : ["-server.series.cache.ratio", "3"]), "-log.format", "json", ...flags,
      ]);
      await waitFor(`server core:${rpcPort} ready`, 15_000, async () => (await bed.coreFetch(webPort, "/-/ready")).ok);
    },
    metrics: () => bed.coreMetrics(webPort),
    metricsText: () => bed.coreMetricsText(webPort),
    async json(path) {
      const r = await bed.coreFetch(webPort, path);
      if (!r.ok) throw new Error(`${path}: ${r.status}`);
      return r.json() as never;
    },
  };
  return s;
}

/**
 * An agent in `host`'s namespace, pinging at the namespace's address (-agent.ip), with a 1 s
 * probe interval and a 500 ms pool sync; JSON logs. `serverAddrs`: one host:port or a list.
 */
export function bedAgent(bed: MeshBed, host: BedHost, region: string, serverAddrs: string, flags: string[] = []): Proc {
  return bed.start(host.ns, [
    AGENT_BIN, "-region", region, "-agent.ip", host.ip, "-server.rpc.addr", serverAddrs,
    "-agent.probe.interval", "1s", "-agent.sync.interval", "500ms", "-log.format", "json", ...flags,
  ]);
}

/** The JSON log lines of a process's output (pino), parsed; other lines are skipped. */
export function logLines(p: Proc, from = 0): { msg?: string; level?: number; time?: number; [k: string]: unknown }[] {
  const out = [];
  for (const line of p.output().slice(from).split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      /* a partial last line */
    }
  }
  return out;
}

/** A short ICMP round for 1 s windows: 10 echoes 20 ms apart, 500 ms timeout (under 0.7 s in all). */
export const SHORT_ICMP = { packet_count: 10, interval: "20ms", timeout: "500ms" };

/**
 * Writes a probe file that gives each region's ICMP targets `module` (dynamic discovery merges the
 * region's agents into its block): one block per region listing one of its own agents' addresses,
 * which dynamic discovery would add anyway. With 1 s windows and series expiring after 3 s, the
 * default round (64 echoes, 5 s timeout) would outlast a pair's series when its target is cut off.
 * @param regions host name -> region
 * @returns the file's path
 */
export function meshProbeFile(bed: MeshBed, regions: Record<string, string>, module: Record<string, unknown> = SHORT_ICMP, extra = ""): string {
  const first = new Map<string, string>();
  for (const h of bed.hosts) if (regions[h.name] && !first.has(regions[h.name]!)) first.set(regions[h.name]!, h.ip);
  const yaml = ["prober_configs:"];
  for (const [region, ip] of first) {
    yaml.push("  - prober_type: icmp", `    region: ${region}`, `    icmp: ${JSON.stringify(module)}`, `    targets: [${ip}]`);
  }
  const file = `${mkdtempSync(`${tmpdir()}/pmf-probes-`)}/probes.yaml`;
  writeFileSync(file, yaml.join("\n") + "\n" + extra);
  return file;
}

/** A throw-away redis-server on core's 127.0.0.1:`port` (no persistence); waits for PONG. */
export async function bedRedis(bed: MeshBed, port = 6379): Promise<Proc> {
  const p = bed.start(bed.core.ns, ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
  await waitFor("redis ready", 10_000, async () => (await bed.exec(bed.core.ns, ["redis-cli", "-p", String(port), "ping"])).stdout.trim() === "PONG");
  return p;
}

/**
 * Σ over servers of a counter as Prometheus's increase() sees it. A server deletes a pair's series
 * after ratio x interval without data (docs/metrics.md "Expiry"), counters included: when an
 * agent moves to another server, the first one's series goes, and comes back from 0 when the agent
 * returns. So the raw sum of the values exposed now undercounts; this adds each series' increases
 * across such resets (a value below the last one, or a series that was gone, starts again from 0).
 */
export class CounterTotal {
  private readonly last = new Map<string, number>();
  private readonly gone = new Set<string>();
  private sum = 0;
  constructor(private readonly name: string, private readonly labels: Record<string, string>) {}

  /** Takes one scrape of `server`. @returns the total so far */
  update(server: string, m: Map<string, Sample[]>): number {
    const seen = new Set<string>();
    for (const s of m.get(this.name) ?? []) {
      if (!Object.entries(this.labels).every(([k, v]) => s.labels[k] === v)) continue;
      const key = `${server}\u0000${Object.entries(s.labels).sort().map(([k, v]) => `${k}=${v}`).join(",")}`;
      seen.add(key);
      const v = Number(s.value);
      const last = this.last.get(key);
      if (last === undefined || this.gone.has(key) || v < last) this.sum += v;
      else this.sum += v - last;
      this.last.set(key, v);
      this.gone.delete(key);
    }
    for (const key of this.last.keys()) if (key.startsWith(`${server}\u0000`) && !seen.has(key)) this.gone.add(key);
    return this.sum;
  }

  get value(): number {
    return this.sum;
  }
}
