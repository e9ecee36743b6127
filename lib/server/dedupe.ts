/**
 * Exactly-once effect for pushes (docs/protocol.md "Batch identity"). An agent numbers its pushes
 * (PushResultsRequest.agent_instance_id + batch_sequence, given when a batch is queued and kept on
 * every resend) and sends them strictly in order: batch n + 1 only after batch n was answered with
 * success (or dropped for good). So the batches a process had accepted, by any server, are exactly
 * those up to the highest sequence accepted, and a batch at or below that mark is a resend of one
 * whose answer was lost: it is answered with success and not counted again.
 *
 * - Alone, a server keeps the mark per agent process in memory (bounded: least recently pushing
 *   processes are forgotten first).
 * - With a shared Redis registry the mark lives in Redis (lib/server/registry_redis.ts claimBatch),
 *   so a batch accepted by server A and resent to B after a lost answer counts once. While Redis is
 *   away each server falls back to its own memory (a batch resent to another server in that time
 *   may count twice; docs/scale.md says so).
 */

/** Longest agent_instance_id accepted (agents send a UUID, 36 characters). */
export const MAX_INSTANCE_ID_LENGTH = 64;

/** Checks a batch identity. @returns "" or why it is unusable */
export function checkBatchIdentity(instanceId: string, sequence: bigint): string {
  if (instanceId === "" && sequence === 0n) return "";
  if (instanceId.length === 0 || instanceId.length > MAX_INSTANCE_ID_LENGTH || !/^[A-Za-z0-9._:-]+$/.test(instanceId)) {
    return `agent_instance_id must be 1..${MAX_INSTANCE_ID_LENGTH} characters of [A-Za-z0-9._:-]`;
  }
  if (sequence === 0n) return "batch_sequence must be at least 1 with an agent_instance_id";
  return "";
}

/** A shared store of marks (Redis), or undefined when there is none. */
export interface SharedBatchMarks {
  /** @returns true: new (claimed now); false: a duplicate; undefined: the store cannot answer now */
  claimBatch(instanceId: string, sequence: bigint): Promise<boolean | undefined>;
}

/** The per-process high-water marks of accepted batches. */
export class BatchDedupe {
  /** agent_instance_id -> highest batch_sequence accepted; Map order = least recently pushed first. */
  private readonly marks = new Map<string, bigint>();

  /**
   * @param maxProcesses agent processes remembered at most (outside input must not grow memory):
   *   a few times the registry's -server.registry.max.agents, for restarts
   * @param shared the Redis marks, shared by the servers of one registry
   */
  constructor(private readonly maxProcesses: number, private readonly shared?: SharedBatchMarks) {}

  /**
   * Claims a batch before it is counted. @returns true when it must be counted, false when it is a
   * duplicate (accepted before, here or by another server). A push without identity (agents
   * before 0.4) is always counted.
   */
  async claim(instanceId: string, sequence: bigint): Promise<boolean> {
    if (instanceId === "") return true;
    const mark = this.marks.get(instanceId);
    if (mark !== undefined && sequence <= mark) {
      this.touch(instanceId, mark);
      return false;
    }
    const shared = await this.shared?.claimBatch(instanceId, sequence);
    if (shared === false) return false;
    // Read again: another push of the same process may have raised it while Redis answered.
    const now = this.marks.get(instanceId);
    if (now !== undefined && sequence <= now) return false;
    this.touch(instanceId, sequence);
    return true;
  }

  /** Processes remembered now. */
  get size(): number {
    return this.marks.size;
  }

  private touch(instanceId: string, mark: bigint): void {
    this.marks.delete(instanceId);
    this.marks.set(instanceId, mark);
    if (this.marks.size > this.maxProcesses) this.marks.delete(this.marks.keys().next().value!);
  }
}
