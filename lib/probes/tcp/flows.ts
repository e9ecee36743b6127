/**
 * The tcp kind's mesh connect probe (TcpModule.flows >= 1), Pingmesh-style (Guo et al.,
 * SIGCOMM 2015: a TCP connect per probe, a connect that needed a SYN retransmission counted as a
 * drop): one connection per flow, all flows at once, each from its own source port of
 * -agent.tcp.flow.ports, so each is one 5-tuple that ECMP / LAG hashing pins to one path
 * (NetNORAD, fbtracert). Each connection is reset right after the handshake.
 *
 * Per flow (FlowStats, proto/probermesh/v1/flow.proto): sent 1 when its connect() went out,
 * received 1 when the connection was established by the first SYN; its RTT is the kernel's SYN ->
 * SYN-ACK time (TCP_INFO, flow_socket.ts), not the poll loop's: the loop only notices outcomes.
 */
import { create } from "@bufbuild/protobuf";
import { FlowStatsSchema, type FlowStats } from "../../rpc/gen/probermesh/v1/flow_pb.ts";
import { ECONNREFUSED, ECONNRESET } from "../icmp/libc.ts";
import type { FailedReason } from "./failed_reason.ts";
import { FlowSocketError, closeWithReset, settled, socketError, sockaddrWithPort, startConnect, tcpInfo } from "./flow_socket.ts";

/**
 * Poll period while connects are pending, ms, for the first FAST_POLL_MS of a round; then
 * SLOW_POLL_MS (a SYN still unanswered by then waits for a retransmission, ≥ 1 s). Neither affects
 * the measured times (those are the kernel's), only when the round notices them.
 */
const POLL_MS = 1;
const FAST_POLL_MS = 200;
const SLOW_POLL_MS = 10;

/** How one flow of a round ended. */
export interface FlowOutcome {
  sourcePort: number;
  /** connect() went out (false: the socket could not be set up, e.g. the port is held elsewhere). */
  sent: boolean;
  /** The connection was established (after retransmissions or not). */
  established: boolean;
  /** The SYN or SYN-ACK had to be sent again (tcpi_total_retrans > 0). */
  retransmitted: boolean;
  /** SYN -> SYN-ACK of the established connection, seconds (tcpi_rtt); 0 otherwise. */
  connectSeconds: number;
  /** Why the flow failed ("" when established): e.g. "bind: Address already in use (errno 98)", "timeout". */
  error: string;
  /** The errno it failed with (0: none, or a timeout / abort). */
  errno: number;
}

/** Where a round connects, and until when. */
export interface FlowRound {
  /** Target IP literal and port. */
  ip: string;
  port: number;
  /** source_ip_address, or undefined for the family's wildcard. */
  sourceIp: string | undefined;
  /** The flows' source ports, one flow each, ascending. */
  ports: readonly number[];
  /** performance.now() ms at which pending connects count as timed out. */
  deadline: number;
  signal?: AbortSignal;
}

interface Pending {
  i: number;
  fd: number;
}

/**
 * Runs one round: connects from every port in parallel and resolves when every flow has an
 * outcome (established, failed, or still pending at the deadline or the abort). Every socket is
 * closed before it resolves. Never rejects.
 * @returns one outcome per port, in `ports` order
 * @throws Error only for a target address that is not an IP literal (the caller resolved it)
 */
export async function connectFlows(r: FlowRound): Promise<FlowOutcome[]> {
  const dest = sockaddrWithPort(r.ip, r.port);
  const out: FlowOutcome[] = r.ports.map((sourcePort) => ({ sourcePort, sent: false, established: false, retransmitted: false, connectSeconds: 0, error: "", errno: 0 }));
  let pending: Pending[] = [];
  const finish = (p: Pending) => {
    const o = out[p.i]!;
    const err = socketError(p.fd);
    // ECONNRESET: the handshake completed and the peer reset the connection before we looked
    // (refused SYNs read ECONNREFUSED): the connect itself worked, and TCP_INFO still has its times.
    if (err !== 0 && err !== ECONNRESET) {
      o.errno = err;
      o.error = new FlowSocketError("connect", err).message;
    } else {
      try {
        const info = tcpInfo(p.fd);
        o.established = info.established || err === ECONNRESET;
        o.retransmitted = info.totalRetrans > 0;
        o.connectSeconds = info.rttSeconds;
        if (!o.established) o.error = "connect: not established after the socket became writable";
      } catch (e) {
        o.error = (e as Error).message;
      }
    }
    closeWithReset(p.fd);
  };
  try {
    r.ports.forEach((port, i) => {
      const o = out[i]!;
      try {
        const s = startConnect(dest, r.sourceIp, port);
        o.sent = true;
        if (s.established) finish({ i, fd: s.fd });
        else pending.push({ i, fd: s.fd });
      } catch (e) {
        if (!(e instanceof FlowSocketError)) throw e;
        o.errno = e.errno;
        o.error = e.message;
        // A connect() that failed at once (unreachable, no route) did go out as far as the host let it.
        o.sent = e.call === "connect";
      }
    });
    const start = performance.now();
    while (pending.length > 0) {
      if (r.signal?.aborted || performance.now() >= r.deadline) break;
      const done = settled(pending.map((p) => p.fd));
      const left: Pending[] = [];
      pending.forEach((p, k) => (done[k] ? finish(p) : left.push(p)));
      pending = left;
      if (pending.length === 0) break;
      const wait = performance.now() - start < FAST_POLL_MS ? POLL_MS : SLOW_POLL_MS;
      await waitFor(Math.min(wait, Math.max(0, r.deadline - performance.now())), r.signal);
    }
    const why = r.signal?.aborted ? "aborted" : "timeout";
    for (const p of pending) out[p.i]!.error = why;
  } finally {
    for (const p of pending) closeWithReset(p.fd);
  }
  return out;
}

/** Sleeps `ms`, or less when `signal` aborts. */
function waitFor(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** A flow as reported: sent 1, received 1 when established by the first SYN, its connect time as RTT. */
export function flowStats(o: FlowOutcome): FlowStats {
  const received = o.established && !o.retransmitted;
  const rtt = received ? o.connectSeconds : 0;
  return create(FlowStatsSchema, { sourcePort: o.sourcePort, sent: o.sent ? 1 : 0, received: received ? 1 : 0, rttMeanSeconds: rtt, rttMinSeconds: rtt, rttMaxSeconds: rtt });
}

/** What a round's outcomes make of the result. */
export interface FlowVerdict {
  /** "" when every flow was established (after a retransmission or not). */
  failedReason: FailedReason | "";
  /** Which ports failed and why ("" on success). */
  error: string;
  /** Mean connect time of the flows established by the first SYN, seconds (0: none). */
  connectSeconds: number;
}

/**
 * The round's verdict: failed_reason "connect" when a flow was refused, unreachable or could not
 * be set up (its port held elsewhere), else "timeout" when a flow was not established in time (or
 * the round was aborted). The error groups the failed ports by cause, runs of ports as ranges
 * (its length stays bounded by the causes, not the flows), e.g. "source ports 40201, 40203-40204:
 * connection refused (RST); source port 40205: bind: Address already in use (errno 98)".
 */
export function flowVerdict(outcomes: readonly FlowOutcome[], timeoutMs: number): FlowVerdict {
  const byCause = new Map<string, number[]>();
  let hardFailure = false;
  let rttSum = 0;
  let rttN = 0;
  for (const o of outcomes) {
    if (o.established) {
      if (!o.retransmitted) {
        rttSum += o.connectSeconds;
        rttN++;
      }
      continue;
    }
    if (o.error !== "timeout" && o.error !== "aborted") hardFailure = true;
    const cause = o.error === "timeout"
      ? `not established within the ${timeoutMs / 1000}s timeout`
      : o.error === "aborted" ? "aborted before established" : o.errno === ECONNREFUSED ? "connection refused (RST)" : o.error;
    byCause.set(cause, [...(byCause.get(cause) ?? []), o.sourcePort]);
  }
  const error = [...byCause].map(([cause, ports]) => `source ${ports.length === 1 ? "port" : "ports"} ${portList(ports)}: ${cause}`).join("; ");
  const failedReason: FailedReason | "" = byCause.size === 0 ? "" : hardFailure ? "connect" : "timeout";
  return { failedReason, error, connectSeconds: rttN ? rttSum / rttN : 0 };
}

/** Ascending ports as "40200-40203, 40207": consecutive runs of three or more as a range. */
export function portList(ports: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ports.length; ) {
    let j = i;
    while (j + 1 < ports.length && ports[j + 1] === ports[j]! + 1) j++;
    if (j - i >= 2) parts.push(`${ports[i]}-${ports[j]}`);
    else for (let k = i; k <= j; k++) parts.push(String(ports[k]));
    i = j + 1;
  }
  return parts.join(", ");
}
