/**
 * Bounded store of result batches not yet accepted by the server. While the server is down the
 * agent keeps probing and queues batches; the oldest are dropped beyond the bound (and counted).
 */
import type { PushResultsRequest } from "../rpc/gen/probermesh/v1/probermesh_pb.ts";

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
    if (b.icmp.length === 0 && b.http.length === 0) return;
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
