/**
 * Bounded store of result batches not yet accepted by the server. While the server is down the
 * agent keeps probing and queues batches, ENCODED (the wire bytes: about 100 bytes per ICMP result
 * instead of about 850 bytes of message objects), bounded in bytes; the oldest are dropped beyond
 * the bound, and how many results they held travels to the server in a later batch's
 * dropped_points (prober_agent_dropped_points_total).
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { PROBER_TYPES, type ProberType, type ResultOf } from "../probes/kind.ts";
import { PushResultsRequestSchema, type Agent, type PathTrace, type PushResultsRequest } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";

/** Results probed and paths traced since the last push, per kind. */
export type Batch = { [K in ProberType]: ResultOf<K>[] } & { traces: PathTrace[] };

/** An empty batch. */
export const emptyBatch = () => ({ ...Object.fromEntries(PROBER_TYPES.map((t) => [t, []])), traces: [] }) as unknown as Batch;

/**
 * Splits a batch into push requests of at most `maxBytes` encoded (in order; a single result
 * larger than that still gets a request of its own). The whole batch is encoded once to measure
 * it; only a batch over the limit is halved (recursively), so the usual push costs one encoding
 * here instead of one per result (10,000 small encoders per push at 10,000 targets).
 */
export function splitBatch(agent: Agent, batch: Batch, maxBytes: number): PushResultsRequest[] {
  /** The batch as one list: each entry puts one result or trace into a request. */
  const entries: ((req: PushResultsRequest) => void)[] = [];
  const addKind = <K extends ProberType>(type: K) => {
    for (const r of batch[type]) entries.push((req) => (req[type] as ResultOf<K>[]).push(r));
  };
  for (const t of PROBER_TYPES) addKind(t);
  for (const t of batch.traces) entries.push((req) => req.traces.push(t));
  const out: PushResultsRequest[] = [];
  const build = (from: number, to: number) => {
    const req = create(PushResultsRequestSchema, { agent });
    for (let i = from; i < to; i++) entries[i]!(req);
    return req;
  };
  const split = (from: number, to: number) => {
    const req = build(from, to);
    if (to - from <= 1 || toBinary(PushResultsRequestSchema, req).byteLength <= maxBytes) {
      out.push(req);
      return;
    }
    const mid = (from + to) >>> 1;
    split(from, mid);
    split(mid, to);
  };
  if (entries.length) split(0, entries.length);
  return out;
}

/** Default of -agent.outbox.max.bytes: 64 MiB of encoded batches. */
export const OUTBOX_MAX_BYTES_DEFAULT = 64 * 1024 * 1024;

/** Outbox settings. */
export interface OutboxOptions {
  /** Cap on the queued encoded bytes (-agent.outbox.max.bytes, default 64 MiB = OUTBOX_MAX_BYTES_DEFAULT). */
  maxBytes: number;
  /** This agent process's random id (PushResultsRequest.agent_instance_id), new at every start. */
  instanceId: string;
}

/** Drops since the last takeDropsToLog() call. */
export interface OutboxDrops {
  /** Batches dropped. */
  batches: number;
  /** Results (points) those batches held. */
  points: number;
}

/** One queued batch: its wire bytes and two counts (the heap is ~ the encoded bytes). */
interface Queued {
  /** toBinary(PushResultsRequestSchema, req), exact length. */
  data: Uint8Array;
  /** Results in it (every prober type; traces are not points). */
  points: number;
  /** Its dropped_points: results dropped before it that it reports. */
  carried: number;
}

/** Results of a request: every prober type's results. Traces are not points (not counted as dropped). */
export function pointsOf(req: PushResultsRequest): number {
  let n = 0;
  for (const t of PROBER_TYPES) n += req[t].length;
  return n;
}

/** Encoded size of dropped_points = n (field 8, varint; 0 is not written), bytes. */
function droppedFieldBytes(n: number): number {
  if (n <= 0) return 0;
  let len = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    len++;
  }
  return 1 + len;
}

/**
 * FIFO of unsent batches, each kept encoded, capped in encoded bytes.
 *
 * Every queued batch carries the batch identity (agent_instance_id, batch_sequence 1, 2, ... in
 * the order of add(), kept on every resend) so that the server counts it once. When the queue is
 * full, the oldest queued batch is dropped; its results — plus the dropped_points it was carrying —
 * are reported in dropped_points of the batch whose add() caused the drop, so no drop count is
 * ever lost with the batch that carried it: once the queue is drained, the dropped_points of all
 * batches ever sent sum to `droppedPoints`.
 *
 * The batch being sent by flush() is never dropped (it may already be on the server): while a send
 * is in flight the queue may exceed the cap by that one batch. One flush() at a time.
 *
 * Memory (bench/outbox.ts): the heap holds the encoded bytes (about 137 bytes per ICMP result)
 * plus about 150 bytes per batch, so ~ the cap for an agent's usual batches of hundreds of results.
 */
export class Outbox {
  /** Queued batches, oldest at `head` (entries before it are sent or dropped). */
  private queue: (Queued | undefined)[] = [];
  private head = 0;
  /** The batch flush() is sending now (taken out of `queue`, put back first if the send fails). */
  private inFlight: Queued | undefined;
  private queuedBytes = 0;
  private queuedPts = 0;
  private sequence = 0n;
  /** Dropped or lost results not yet carried by a queued batch (0 outside add() unless reportLost() was called since). */
  private pendingDropped = 0;
  private dropped = { batches: 0, points: 0 };
  private logged = { batches: 0, points: 0 };
  private readonly maxBytes: number;
  private readonly instanceId: string;

  constructor(o: OutboxOptions) {
    this.maxBytes = o.maxBytes;
    this.instanceId = o.instanceId;
  }

  /** Queued batches (the one being sent included). */
  get size(): number {
    return this.queue.length - this.head + (this.inFlight ? 1 : 0);
  }

  /** Encoded bytes of the queued batches (the one being sent included), bytes. */
  get bytes(): number {
    return this.queuedBytes;
  }

  /** Results (points) in the queued batches (the one being sent included): unsent so far. */
  get queuedPoints(): number {
    return this.queuedPts;
  }

  /** Batches dropped because the outbox was full, since start. */
  get droppedBatches(): number {
    return this.dropped.batches;
  }

  /** Results (points) in the batches dropped because the outbox was full, since start. */
  get droppedPoints(): number {
    return this.dropped.points;
  }

  /**
   * Reports results lost otherwise (a batch the server refused for good: its results, plus the
   * dropped_points it carried): the next batch queued carries them in dropped_points.
   * @param points results lost
   */
  reportLost(points: number): void {
    if (points > 0) this.pendingDropped += points;
  }

  /** Drops since the last call, for a log line at most once a minute: undefined when none. */
  takeDropsToLog(): OutboxDrops | undefined {
    const d = { batches: this.dropped.batches - this.logged.batches, points: this.dropped.points - this.logged.points };
    if (d.batches === 0) return undefined;
    this.logged = { ...this.dropped };
    return d;
  }

  /**
   * Stamps `req` with agentInstanceId, the next batchSequence (1, 2, ... in the order of add) and
   * droppedPoints (the results dropped to make room for it, plus the dropped_points the dropped
   * batches carried); encodes it; queues it. A request with no results and no traces is ignored
   * (no drop count is ever left pending by add: each is carried by the batch whose add caused it;
   * counts from reportLost() wait for the next batch with results).
   * While the queued bytes (the batch being sent not counted) would exceed maxBytes the OLDEST
   * queued batches are dropped, never this one (a batch over maxBytes on its own is queued alone)
   * nor the one being sent.
   */
  add(req: PushResultsRequest): void {
    const points = pointsOf(req);
    if (points === 0 && req.traces.length === 0) return;
    req.agentInstanceId = this.instanceId;
    req.batchSequence = ++this.sequence;
    req.droppedPoints = 0n;
    let data = toBinary(PushResultsRequestSchema, req);
    // Make room first, so that this batch carries every drop it caused. The batch in flight does
    // not count: it leaves when its send succeeds, and is the oldest again if it fails.
    const sending = this.inFlight?.data.byteLength ?? 0;
    while (this.head < this.queue.length && this.queuedBytes - sending + data.byteLength + droppedFieldBytes(this.pendingDropped) > this.maxBytes) this.dropOldest();
    if (this.pendingDropped > 0) {
      req.droppedPoints = BigInt(this.pendingDropped);
      data = toBinary(PushResultsRequestSchema, req); // only when something was dropped
    }
    this.queue.push({ data, points, carried: this.pendingDropped });
    this.pendingDropped = 0;
    this.queuedBytes += data.byteLength;
    this.queuedPts += points;
  }

  /**
   * Sends batches oldest first (each decoded with fromBinary just before its send) until one fails
   * (flush rejects with that error); a batch leaves the queue only once `send` resolved. The message
   * handed to `send` is a fresh copy: `send` may change it (e.g. sentTime set per attempt).
   * @returns batches sent
   */
  async flush(send: (req: PushResultsRequest) => Promise<void>): Promise<number> {
    if (this.inFlight) throw new Error("Outbox.flush: a flush is already running");
    let n = 0;
    while (this.head < this.queue.length) {
      const b = this.takeOldest();
      this.inFlight = b;
      try {
        await send(fromBinary(PushResultsRequestSchema, b.data));
      } catch (e) {
        this.putBackOldest(b);
        throw e;
      } finally {
        this.inFlight = undefined;
      }
      this.queuedBytes -= b.data.byteLength;
      this.queuedPts -= b.points;
      n++;
    }
    return n;
  }

  /** Removes the oldest queued batch (not the one in flight) and returns it; the counts stay. */
  private takeOldest(): Queued {
    const b = this.queue[this.head]!;
    this.queue[this.head++] = undefined;
    // Compact now and then: shift() on a long array would copy it at every removal.
    if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return b;
  }

  private putBackOldest(b: Queued): void {
    if (this.head > 0) this.queue[--this.head] = b;
    else this.queue.unshift(b);
  }

  /** Drops the oldest queued batch: its results and what it carried become pending again. */
  private dropOldest(): void {
    const b = this.takeOldest();
    this.queuedBytes -= b.data.byteLength;
    this.queuedPts -= b.points;
    this.pendingDropped += b.points + b.carried;
    this.dropped.batches++;
    this.dropped.points += b.points;
  }
}
