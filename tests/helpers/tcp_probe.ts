/**
 * Runs the TCP prober the way an agent does, on a module written as the `tcp:` block of a probe
 * file and parsed by the server's config code (files read there), against a local target.
 */
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { checkTcpResult } from "../../lib/probes/tcp/ingest.ts";
import { TcpProber } from "../../lib/probes/tcp/prober.ts";
import { TcpTargetSchema, type TcpResult } from "../../lib/rpc/gen/probermesh/v1/tcp_pb.ts";
import { parseProbeFile } from "../../lib/targets/config.ts";

const dir = mkdtempSync(`${tmpdir()}/pm-tcp-`);
const prober = new TcpProber();

/**
 * Probes `target` with `moduleYaml` (the lines under `tcp:`). Every result must pass the server's
 * validation (checkTcpResult), so each test also checks what the server would accept.
 */
export async function probeTcp(target: string, moduleYaml = "", signal?: AbortSignal): Promise<TcpResult> {
  const text = `prober_configs:\n  - prober_type: tcp\n    region: r\n    tcp:\n${(moduleYaml || "{}").replace(/^/gm, "      ")}\n    targets: ["${target}"]\n`;
  const file = `${dir}/probe.yaml`;
  writeFileSync(file, text);
  const block = parseProbeFile(text, file).blocks[0]!;
  if (block.proberType !== "tcp") throw new Error("not tcp");
  const r = await prober.probe(create(TcpTargetSchema, { targetRegion: "r", address: block.targets[0]!, module: block.module }), signal);
  const invalid = checkTcpResult(r);
  if (invalid) throw new Error(`the server would reject this result: ${invalid}`);
  return r;
}

/** "ok", or the failed_reason. */
export const reasonOf = (r: TcpResult) => (r.success ? "ok" : r.failedReason);

/** The failed_reason and error, for assertions that show both. */
export const outcome = (r: TcpResult) => ({ reason: reasonOf(r), error: r.error });
