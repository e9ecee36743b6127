/**
 * The TCP kind's agent half. STUB: the tcp kind's owner replaces this file.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { TcpResultSchema, type TcpResult, type TcpTarget } from "../../rpc/gen/probermesh/v1/tcp_pb.ts";
import type { Prober, ProberStatus } from "../kind.ts";

/** Runs TCP probes. */
export class TcpProber implements Prober<"tcp"> {
  readonly type = "tcp" as const;

  status(): ProberStatus {
    return { ready: false, message: "TCP probes are not implemented yet" };
  }

  async probe(target: TcpTarget): Promise<TcpResult> {
    return create(TcpResultSchema, { targetRegion: target.targetRegion, address: target.address, time: timestampFromMs(Date.now()), failedReason: "connect", error: "not implemented" });
  }

  close(): void {}
}
