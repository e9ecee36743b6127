/**
 * The udp kind's agent half (lib/probes/kind.ts): rounds of probes (packet.ts) to UDP responders,
 * normally other agents' (responder.ts), spread round-robin over flows: one source port of
 * -agent.udp.flow.ports per flow, so each flow is one 5-tuple that ECMP / LAG hashing pins to one
 * path (NetNORAD, Pingmesh; docs/probes.md "UDP"). Per-flow counts let the server and the agent
 * find the one lossy bundle member (lib/probes/flow/lossy.ts).
 *
 * One UdpSocket per flow port, opened on first use and shared by every round of every target; one
 * tick (every ~1 ms, only while rounds are pending, like the ICMP engine) sends the probes that
 * are due, reads what poll() says is readable and expires probes past their timeout. Accuracy
 * does not depend on the tick: send times are read right before sendto(), receive times are the
 * kernel's stamps (socket.ts), and the responder's dwell comes from the reply (round.ts).
 *
 * Each (flow port, responder) keeps one FlowSequence (oneway.ts) across rounds: the sequences of
 * its requests and the newest reply's reflector count, from which a round's one-way loss of the
 * requests (forward_sent / forward_lost) follows.
 */
import { create } from "@bufbuild/protobuf";
import { Moments } from "../../aggregation/moments.ts";
import { SYSTEM_CLOCK } from "../icmp/clock.ts";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { randomBytes } from "node:crypto";
import { UdpResultSchema, type UdpModule, type UdpResult, type UdpTarget } from "../../rpc/gen/probermesh/v1/udp_pb.ts";
import { flowPorts, type PortRange } from "../flow/ports.ts";
import { splitHostPortTarget } from "../host_port.ts";
import { ipv6Bytes, libc } from "../icmp/libc.ts";
import type { Prober, ProberStatus } from "../kind.ts";
import { resolveHostWithin, roundErrorText } from "../resolve.ts";
import { UDP_DEFAULTS } from "./defaults.ts";
import { FLAG_TRACE, HEADER_LEN, MAX_PROBE_LEN, TYPE_REPLY, looksLikeProbe, parseProbe, writeRequest } from "./packet.ts";
import { FlowSequence } from "./oneway.ts";
import { UdpRound, portErrors, type RoundFlow, type UdpRoundOptions } from "./round.ts";
import { UdpSocket, ipText, type UdpDatagram } from "./socket.ts";

/** UdpResult.error of a round before the server sent a mesh key (servers before 0.6 send none). */
export const NO_MESH_KEY = "no mesh key yet: the server is older than 0.6";
/** Tick period while rounds are pending, ms. */
const TICK_MS = 1;
/**
 * (flow port, destination) sequences kept (with their newest reply, oneway.ts); beyond, the least
 * recently used is forgotten (it restarts at random, and its one-way counting starts over).
 */
const MAX_SEQUENCES = 65_536;

const optionsOf = new WeakMap<object, UdpRoundOptions & { prefer: "ip4" | "ip6"; fallback: boolean }>();

/** A module's round options with the defaults filled in (durations ms); cached per module object. */
export function udpOptions(m: UdpModule | undefined): UdpRoundOptions & { prefer: "ip4" | "ip6"; fallback: boolean } {
  const cached = m && optionsOf.get(m);
  if (cached) return cached;
  const o = {
    count: m?.packetCount || UDP_DEFAULTS.packetCount,
    intervalMs: m?.interval ? durationMs(m.interval) : UDP_DEFAULTS.intervalMs,
    payloadSize: Math.min(MAX_PROBE_LEN, Math.max(HEADER_LEN, m?.payloadSize || UDP_DEFAULTS.payloadSize)),
    timeoutMs: m?.timeout ? durationMs(m.timeout) : UDP_DEFAULTS.timeoutMs,
    flows: m?.flows || UDP_DEFAULTS.flows,
    dscp: (m?.dscp ?? UDP_DEFAULTS.dscp) & 0x3f,
    prefer: m?.preferredIpProtocol === "ip6" ? ("ip6" as const) : ("ip4" as const),
    fallback: m?.preferredIpProtocol ? m.ipProtocolFallback : UDP_DEFAULTS.ipProtocolFallback,
  };
  if (m) optionsOf.set(m, o);
  return o;
}

/** The udp prober; one per agent (it owns the flow ports). */
export class UdpProber implements Prober<"udp"> {
  readonly type = "udp" as const;
  readonly flowPorts: PortRange;
  /** This prober's id in every probe: replies carrying another are not ours. */
  readonly nonce: bigint = randomBytes(8).readBigUInt64BE();
  private readonly meshKey: () => Uint8Array | undefined;
  private readonly sockets = new Map<number, UdpSocket>();
  private readonly rounds = new Set<UdpRound>();
  /** Probes awaiting a reply (or duplicates of one): "localPort|srcIp|srcPort|sequence". */
  private readonly pending = new Map<string, { round: UdpRound; i: number }>();
  private readonly sequences = new Map<string, FlowSequence>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private key: Uint8Array | undefined;
  private previousKey: Uint8Array | undefined;
  private pollfds = new Uint8Array(0);
  private pollPorts: number[] = [];
  private closed = false;

  /**
   * @param opts.flowPorts -agent.udp.flow.ports
   * @param opts.meshKey the current mesh key (HeartbeatResponse.mesh_key), undefined before the
   *   first; replies verify under it or under the key it replaced
   */
  constructor(opts: { flowPorts: PortRange; meshKey: () => Uint8Array | undefined }) {
    this.flowPorts = opts.flowPorts;
    this.meshKey = opts.meshKey;
  }

  status(): ProberStatus {
    return { ready: true, message: `UDP probes to responders over flows from ports ${this.flowPorts.first}-${this.flowPorts.last}`, fields: { flowPorts: `${this.flowPorts.first}-${this.flowPorts.last}` } };
  }

  /** The keys replies may verify under: the current one, then the one it replaced. */
  private keys(): Uint8Array[] {
    const k = this.meshKey();
    if (k && k.length > 0 && (!this.key || !Buffer.from(k).equals(this.key))) {
      this.previousKey = this.key;
      this.key = Uint8Array.from(k);
    }
    return [this.key, this.previousKey].filter((x): x is Uint8Array => x !== undefined);
  }

  /** One round; `signal` ends it at once (its result then holds what was measured so far). */
  async probe(target: UdpTarget, signal?: AbortSignal): Promise<UdpResult> {
    const opts = udpOptions(target.module);
    const startWall = Date.now();
    const start = performance.now();
    const result = create(UdpResultSchema, { targetRegion: target.targetRegion, address: target.address, time: timestampFromMs(startWall), dscp: opts.dscp });
    try {
      const keys = this.keys();
      if (keys.length === 0) result.error = NO_MESH_KEY;
      else {
        const hp = splitHostPortTarget(target.address);
        if (!hp) throw new Error(`"${target.address}" is not host:port`);
        const r = await resolveHostWithin(hp.host, opts.timeoutMs, opts.prefer, opts.fallback, signal);
        result.resolvedIp = r.ip;
        result.resolveSeconds = r.seconds;
        await this.run(r.ip, hp.port, opts, keys[0]!, result, signal);
      }
    } catch (e) {
      result.error = roundErrorText(result.resolvedIp, e);
    }
    result.durationSeconds = (performance.now() - start) / 1000;
    return result;
  }

  /** Runs the probes of a round to ip:port and fills `result`. */
  private run(ip: string, port: number, opts: UdpRoundOptions, key: Uint8Array, result: UdpResult, signal?: AbortSignal): Promise<void> {
    const dstIp = ip.includes(":") ? ipText(ipv6Bytes(ip)) : ip;
    const failed: { port: number; message: string }[] = [];
    const flows: RoundFlow[] = [];
    for (const p of flowPorts(this.flowPorts, opts.flows)) {
      let sock: UdpSocket | undefined;
      try {
        sock = this.socket(p);
      } catch (e) {
        failed.push({ port: p, message: (e as Error).message });
      }
      // An address the socket cannot reach (IPv6 on an IPv4-only host) fails the round: throws.
      const sockaddr = sock ? sock.sockaddr(ip, port) : null;
      flows.push({ port: p, sockaddr, sequence: this.flowSequence(`${p}|${dstIp}|${port}`), sent: 0, received: 0, duplicates: 0, reordered: 0, highest: -1, rtt: new Moments() });
    }
    const usable = flows.filter((f) => f.sockaddr);
    return new Promise<void>((resolve) => {
      let onAbort: (() => void) | undefined;
      const round = new UdpRound(opts, flows, dstIp, port, new Uint8Array(opts.payloadSize), key, () => {
        if (onAbort) signal?.removeEventListener("abort", onAbort);
        round.summarise(result);
        const bind = portErrors(failed);
        if (bind) result.error = result.error ? `${bind}; ${result.error}` : bind;
        resolve();
      });
      if (usable.length === 0 || signal?.aborted) {
        round.done = true;
        round.finish();
        return;
      }
      for (let i = 0; i < opts.count; i++) {
        const fi = flows.indexOf(usable[i % usable.length]!);
        round.probes.push({ flow: fi, k: Math.floor(i / usable.length), sequence: 0, txNs: NaN, answered: false, key: "" });
      }
      round.nextSendAtNs = this.now();
      onAbort = () => this.end(round);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.rounds.add(round);
      this.tick();
    });
  }

  /** Monotonic ns on the sockets' clock. */
  private now(): number {
    return SYSTEM_CLOCK.monotonicNs();
  }

  /** The socket of a flow port, opened on first use. @throws Error naming the port when it cannot be bound */
  private socket(port: number): UdpSocket {
    let s = this.sockets.get(port);
    if (!s) {
      if (this.closed) throw new Error("the udp prober is closed");
      s = new UdpSocket(port);
      this.sockets.set(port, s);
      this.pollfds = new Uint8Array(8 * this.sockets.size);
      this.pollPorts = [...this.sockets.keys()];
      const v = new DataView(this.pollfds.buffer);
      this.pollPorts.forEach((p, i) => {
        v.setInt32(8 * i, this.sockets.get(p)!.descriptor, true);
        v.setInt16(8 * i + 4, 1, true); // POLLIN
      });
    }
    return s;
  }

  /** The sequence state of a (flow port, destination), new (random start) on first use; marks it recently used. */
  private flowSequence(id: string): FlowSequence {
    let s = this.sequences.get(id);
    if (s === undefined) {
      if (this.sequences.size >= MAX_SEQUENCES) this.sequences.delete(this.sequences.keys().next().value!);
      s = new FlowSequence();
    } else this.sequences.delete(id);
    this.sequences.set(id, s);
    return s;
  }

  private tick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    let now = this.now();
    for (const r of this.rounds) this.sendDue(r, now);
    this.readReplies();
    now = this.now();
    for (const r of this.rounds) {
      const timeoutNs = r.opts.timeoutMs * 1e6;
      while (r.expired < r.nextSend) {
        const p = r.probes[r.expired]!;
        if (!Number.isNaN(p.txNs) && p.txNs + timeoutNs > now) break;
        if (p.key) this.pending.delete(p.key);
        p.key = "";
        r.expired++;
      }
      if (r.complete) this.end(r);
    }
    if (this.rounds.size > 0) this.timer = setTimeout(() => this.tick(), TICK_MS);
  }

  private sendDue(r: UdpRound, now: number): void {
    const { buf, key } = r;
    while (r.nextSend < r.probes.length && r.nextSendAtNs <= now) {
      const p = r.probes[r.nextSend]!;
      const f = r.flows[p.flow]!;
      const s = this.sockets.get(f.port)!;
      p.sequence = f.sequence.take();
      writeRequest(buf, key, { dscp: r.opts.dscp, flags: 0, nonce: this.nonce, sequence: p.sequence });
      s.setDscp(r.opts.dscp);
      const t = s.send(buf, buf.length, f.sockaddr!);
      f.sent++;
      if (t >= 0) {
        p.txNs = t;
        p.key = `${f.port}|${r.dstIp}|${r.dstPort}|${p.sequence}`;
        this.pending.set(p.key, { round: r, i: r.nextSend });
      } else r.unsent++;
      r.nextSend++;
      r.nextSendAtNs += r.opts.intervalMs * 1e6;
    }
  }

  /** Reads every socket poll() finds readable and matches the replies. */
  private readReplies(): void {
    const n = this.pollPorts.length;
    if (n === 0 || libc.poll(this.pollfds, n, 0) <= 0) return;
    const v = new DataView(this.pollfds.buffer);
    for (let i = 0; i < n; i++) {
      if (v.getInt16(8 * i + 6, true) === 0) continue;
      const port = this.pollPorts[i]!;
      this.sockets.get(port)?.drain((d) => this.onDatagram(port, d));
    }
  }

  private onDatagram(port: number, d: UdpDatagram): void {
    const buf = d.buf.subarray(d.offset, d.offset + Math.min(d.len, d.buf.length - d.offset));
    if (!looksLikeProbe(buf, d.len) || buf[4] !== TYPE_REPLY) return;
    const seq = ((buf[16]! << 24) | (buf[17]! << 16) | (buf[18]! << 8) | buf[19]!) >>> 0;
    const hit = this.pending.get(`${port}|${d.sourceIp}|${d.sourcePort}|${seq}`);
    if (!hit) return;
    const p = parseProbe(buf, d.len, this.keys());
    if (!p || p.header.type !== TYPE_REPLY || p.header.nonce !== this.nonce || p.header.flags & FLAG_TRACE) return;
    hit.round.reply(hit.i, d.rxNs, Number(p.header.txNs - p.header.rxNs), p.header.count);
  }

  /** Ends a round: its pending probes are forgotten, its result is summarised. */
  private end(r: UdpRound): void {
    if (r.done) return;
    r.done = true;
    this.rounds.delete(r);
    for (const p of r.probes) if (p.key) this.pending.delete(p.key);
    r.finish();
  }

  /** Ends every round and closes the flow sockets. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const r of [...this.rounds]) this.end(r);
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
    this.pollPorts = [];
  }
}
