/**
 * Child process of bench/udp.ts. Two roles:
 *
 *   bun bench/udp_child.ts responder PORT KEYHEX      a UDP responder (no rate limit) until SIGTERM
 *   bun bench/udp_child.ts round PORT KEYHEX N COUNT INTERVAL_MS
 *       one udp round (COUNT probes over 16 flows) to each of N loopback targets at once, as
 *       bench/icmp_round.ts does for ICMP; prints JSON {sent, received, rttsMedianSeconds}
 *
 * CPU and RSS are read by the parent from each process's rusage.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { UdpProber } from "../lib/probes/udp/prober.ts";
import { UdpResponder } from "../lib/probes/udp/responder.ts";
import { udpKind } from "../lib/probes/udp/kind.ts";
import { UdpTargetSchema } from "../lib/rpc/gen/probermesh/v1/udp_pb.ts";
import { loopbackTargets } from "./targets.ts";

const [role, portText, keyHex, ...rest] = process.argv.slice(2) as [string, string, string, ...string[]];
const key = Uint8Array.from(Buffer.from(keyHex, "hex"));
const port = Number(portText);
if (role === "responder") {
  const r = new UdpResponder({ port, keys: () => [key], maxRate: 1e9, perSourceRate: 1e9, ipv4Only: true });
  process.on("SIGTERM", () => {
    r.close();
    process.exit(0);
  });
  console.log("ready");
} else {
  const [n, count, intervalMs] = rest.map(Number) as [number, number, number];
  const prober = new UdpProber({ flowPorts: { first: 43100, last: 43115 }, meshKey: () => key });
  const module = udpKind.defaultModule();
  module.packetCount = count;
  module.interval = durationFromMs(intervalMs);
  module.timeout = durationFromMs(2000);
  const results = await Promise.all(loopbackTargets(n).map((ip) => prober.probe(create(UdpTargetSchema, { targetRegion: "x", address: `${ip}:${port}`, module }))));
  prober.close();
  let sent = 0, received = 0;
  const means: number[] = [];
  for (const r of results) {
    sent += r.sent;
    received += r.received;
    if (r.received) means.push(r.meanSeconds);
  }
  means.sort((a, b) => a - b);
  console.log(JSON.stringify({ sent, received, rttsMedianSeconds: means[Math.floor(means.length / 2)] ?? null, errors: [...new Set(results.map((r) => r.error).filter(Boolean))].slice(0, 3) }));
}
