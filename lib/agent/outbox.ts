/**
 * Bounded store of result batches not yet accepted by the server. While the server is down the
 * agent keeps probing and queues batches; the oldest are dropped beyond the bound (and counted).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { PROBER_TYPES, type ProbeKind, type ProberType, type ResultOf } from "../probes/kind.ts";
import { PROBE_KINDS } from "../probes/kinds.ts";
import { PathTraceSchema, PushResultsRequestSchema, type Agent, type PathTrace, type PushResultsRequest } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";

/** Results probed and paths traced since the last push, per kind. */
export type Batch = { [K in ProberType]: ResultOf<K>[] } & { traces: PathTrace[] };

/** An empty batch. */
export const emptyBatch = () => ({ ...Object.fromEntries(PROBER_TYPES.map((t) => [t, []])), traces: [] }) as unknown as Batch;

/**
 * Splits a batch into push requests of at most `maxBytes` of encoded results each (in order; a
 * single result larger than that still gets a request of its own).
 */
export function splitBatch(agent: Agent, batch: Batch, maxBytes: number): PushResultsRequest[] {
  const out: PushResultsRequest[] = [];
  let cur = create(PushResultsRequestSchema, { agent });
  let size = 0;
  /** Adds one encoded message of `n` bytes through `put`, opening a new request when full. */
  const add = (n: number, put: (req: PushResultsRequest) => void) => {
    if (size > 0 && size + n + 8 > maxBytes) {
      out.push(cur);
      cur = create(PushResultsRequestSchema, { agent });
      size = 0;
    }
    put(cur);
    size += n + 8;
  };
  const addKind = <K extends ProberType>(type: K) => {
    const kind = PROBE_KINDS[type] as ProbeKind<K>;
    for (const r of batch[type]) add(toBinary(kind.resultSchema, r).byteLength, (req) => (req[type] as ResultOf<K>[]).push(r));
  };
  for (const t of PROBER_TYPES) addKind(t);
  for (const t of batch.traces) add(toBinary(PathTraceSchema, t).byteLength, (req) => req.traces.push(t));
  if (size > 0) out.push(cur);
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
