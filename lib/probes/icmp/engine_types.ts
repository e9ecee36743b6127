/** The echo engine's types (engine.ts): a round's options and outcome, its internal state, the engine's counters. */
import type { VariantSettings, VariantSocket } from "./engine_variants.ts";
import type { IcmpSocket } from "./socket.ts";

/**
 * Parameters of one echo round; durations in milliseconds. `ttl`, `dontFragment` and `sourceIp`
 * (VariantSettings, blackbox_exporter's options) put the round on a socket with those settings.
 */
export interface EchoOptions extends VariantSettings {
  /** Echo requests to send, 1..65535. */
  count: number;
  /** Spacing of requests to this destination, ms (never closer than half of it, even after a stall). */
  intervalMs: number;
  /** ICMP data bytes after the 8-byte echo header (≥ 8: the engine token fills the first 8). */
  payloadSize: number;
  /** Per-packet timeout, ms: a reply later than this after its request counts as lost. */
  timeoutMs: number;
  /**
   * Sequence number of the first request instead of the per-destination counter (tests use it to
   * cross the 16-bit wrap on purpose). Two concurrent rounds to one address must not overlap.
   */
  firstSequence?: number;
}

/** Outcome of one echo round. RTTs in seconds. */
export interface EchoOutcome {
  sent: number;
  received: number;
  /** Extra replies for requests already answered (RFC 792 allows duplicates; not counted as received). */
  duplicates: number;
  /** Replies carrying our token whose payload or checksum did not match what was sent (ignored). */
  corrupted: number;
  /** RTT of each answered request in send order, seconds (receive time − time before sendto, both monotonic; socket.ts). Built on access. */
  rttsSeconds: number[];
  /**
   * RTT per request, nanoseconds, NaN when unanswered (index i: sequence firstSequence + i). The
   * round's own buffer, no copy: valid until `IcmpEngine.release(outcome)`.
   */
  rttNs: Float64Array;
  /** RTT per request, seconds, NaN when unanswered: index i is sequence (firstSequence + i) mod 2^16. */
  requestRttsSeconds: number[];
  /** Sequence number of the first request (the others follow, modulo 2^16). */
  firstSequence: number;
  /**
   * "" if none; else the first send error ("sendto: ..."), or on a socket with settings the first
   * ICMP error or refused send (icmp_errors.ts: "time exceeded from 10.0.0.1 (ttl 1)", ...).
   */
  error: string;
}

/** One active round (engine-internal). */
export interface Round {
  v6: boolean;
  /** The destination as given. */
  ip: string;
  /** Where its requests go out and its replies come in. */
  sock: IcmpSocket;
  /** The socket with settings it holds, if any (released when it finishes). */
  variant: VariantSocket | undefined;
  /** Requests definitely lost before their timeout (variant sockets only: refused send or ICMP error). */
  lost: number;
  sockaddr: Uint8Array;
  destKey: number | string;
  opts: EchoOptions;
  seqBase: number;
  startNs: number;
  /** Due time of the next request (send heap key), ns. */
  dueNs: number;
  /** lastSendNs + timeout once every request is out (deadline heap key), ns. */
  deadlineNs: number;
  /** Send time per request, ns (NaN: send failed): the first half of `times`. */
  sentAt: Float64Array;
  /** RTT per request, ns (NaN: unanswered): the second half of `times`. */
  rttNs: Float64Array;
  /** One buffer of 2 × count doubles holding sentAt and rttNs, recycled through the free list. */
  times: Float64Array;
  sent: number;
  received: number;
  duplicates: number;
  corrupted: number;
  error: string;
  lastSendNs: number;
  finished: boolean;
  done: (o: EchoOutcome) => void;
}

/** Statistics of the engine since start, for debugging and the benchmark. */
export interface EngineStats {
  sent: number;
  received: number;
  /** Echo replies with our token but no active round (late after their round ended, or forged). */
  unmatched: number;
  /** Send attempts deferred because the socket buffer was full. */
  deferred: number;
  /** Replies matched to a request but later than its timeout (monotonic send and receive times; counted lost). */
  late: number;
  /** ICMP errors about requests of rounds on sockets with settings (time exceeded, fragmentation needed, ...). */
  icmpErrors: number;
}
