/**
 * The DNS kind's agent half. STUB: the dns kind's owner replaces this file.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { DnsResultSchema, type DnsResult, type DnsTarget } from "../../rpc/gen/probermesh/v1/dns_pb.ts";
import type { Prober, ProberStatus } from "../kind.ts";

/** Runs DNS probes. */
export class DnsProber implements Prober<"dns"> {
  readonly type = "dns" as const;

  status(): ProberStatus {
    return { ready: false, message: "DNS probes are not implemented yet" };
  }

  async probe(target: DnsTarget): Promise<DnsResult> {
    return create(DnsResultSchema, { targetRegion: target.targetRegion, address: target.address, time: timestampFromMs(Date.now()), failedReason: "connect", error: "not implemented" });
  }

  close(): void {}
}
