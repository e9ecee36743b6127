/**
 * The registry of probe kinds' common halves (lib/probes/kind.ts), keyed by prober_type. Config,
 * pools and the RPC service loop over it instead of naming kinds.
 */
import { httpKind } from "./http/kind.ts";
import { icmpKind } from "./icmp/kind.ts";
import type { ProbeKind, ProberType } from "./kind.ts";

export const PROBE_KINDS: { [K in ProberType]: ProbeKind<K> } = { icmp: icmpKind, http: httpKind };
