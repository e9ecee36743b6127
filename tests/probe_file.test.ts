/**
 * The probe file's `targets`: a block of a kind whose targets discovery adds (icmp, udp: the
 * region's agents are merged in, docs/configuration.md) may list none and still give the region's
 * module; any other kind must list at least one, and the error says which kinds may not.
 */
import { expect, test } from "bun:test";
import { MESH_MERGED_KINDS } from "../lib/probes/kinds.ts";
import { ConfigError, parseProbeFile } from "../lib/targets/config.ts";

test("icmp and udp blocks may leave their targets to discovery; an http block may not", () => {
  const ok = parseProbeFile(["prober_configs:", "  - prober_type: icmp", "    region: a", "    icmp: {packet_count: 10}", "  - prober_type: udp", "    region: a", "    targets: []"].join("\n"), "p.yaml");
  expect(ok.blocks.map((b) => [b.proberType, b.targets])).toEqual([["icmp", []], ["udp", []]]);
  let err: unknown;
  try {
    parseProbeFile(["prober_configs:", "  - prober_type: http", "    region: a"].join("\n"), "p.yaml");
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as ConfigError).message).toContain(`must list at least one target (only ${MESH_MERGED_KINDS.join(" and ")} blocks`);
  expect((err as ConfigError).message).toContain("p.yaml:2");
});
