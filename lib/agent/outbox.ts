/**
 * Bounded store of result batches not yet accepted by the server. While the server is down the
 * agent keeps probing and queues batches; the oldest are dropped beyond the bound (and counted).
 */
import { create, toBinary } from "@bufbuild/protobuf";
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

/** FIFO of unsent batches. */
export class Outbox {
  private readonly batches: PushResultsRequest[] = [];
  /** Batches dropped because the outbox was full. */
  dropped = 0;

  /** @param maxBatches bound (default: one hour of 15 s batches) */
  constructor(private readonly maxBatches = 240) {}

  get size(): number {
    return this.batches.length;
  }

  add(b: PushResultsRequest): void {
    if (b.icmp.length === 0 && b.http.length === 0 && b.traces.length === 0) return;
    this.batches.push(b);
    while (this.batches.length > this.maxBatches) {
      this.batches.shift();
      this.dropped++;
    }
  }

  /**
   * Sends batches oldest first until one fails; a sent batch leaves the outbox only once `send`
   * resolved. @returns batches sent
   */
  async flush(send: (b: PushResultsRequest) => Promise<void>): Promise<number> {
    let n = 0;
    while (this.batches.length > 0) {
      await send(this.batches[0]!);
      this.batches.shift();
      n++;
    }
    return n;
  }
}
