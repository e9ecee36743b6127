/**
 * The window the server hands to the localiser's worker (lib/localiser/packed.ts): packed and
 * unpacked, it is the window (links with and without one-way counts, agents, traces, inferred
 * pairs), and the localiser explains it the same. Through the binaries the worker itself runs in
 * tests/faults/incidents.test.ts, tests/incidents_hop.test.ts and tests/console_incidents.test.ts.
 */
import { expect, test } from "bun:test";
import { Localiser } from "../lib/localiser/localise.ts";
import type { WindowInput } from "../lib/localiser/model.ts";
import { packWindow, unpackWindow } from "../lib/localiser/packed.ts";

function window(endMs: number, lossyAgent: string): WindowInput {
  const agents = ["a", "b", "c", "d"].flatMap((r, i) => [1, 2, 3].map((k) => ({ region: r, ip: `10.${i}.0.${k}`, alive: true })));
  const links: WindowInput["links"] = [];
  for (const s of agents) for (const t of agents) {
    if (s.region === t.region) continue;
    const lost = s.ip === lossyAgent ? 6 : 0;
    links.push({ kind: "icmp", sourceRegion: s.region, agentIp: s.ip, targetRegion: t.region, target: t.ip, sent: 20, lost });
    links.push({ kind: "udp", sourceRegion: s.region, agentIp: s.ip, targetRegion: t.region, target: t.ip, sent: 16, lost: lost * 0.8, forwardSent: 16, forwardLost: lost * 0.8 });
  }
  return {
    windowEndMs: endMs, links, agents: agents.map((a, i) => (i === 0 ? { ...a, health: { roundsDue: 10, roundsLate: 0, loopbackSent: 10, loopbackReceived: 10 } } : a)),
    traces: [{ sourceRegion: "a", agentIp: "10.0.0.1", targetRegion: "b", target: "10.1.0.1", timeMs: endMs - 1000, reached: true, hops: [{ ttl: 1, address: "192.0.2.1", sent: 10, received: 10 }] }],
    inferred: [{ sourceRegion: "c", targetRegion: "d" }],
  };
}

test("a packed window unpacks to the same window, and the localiser explains both alike", () => {
  const direct = new Localiser(15_000), viaPack = new Localiser(15_000);
  for (let w = 1; w <= 4; w++) {
    const input = window(w * 15_000, "10.1.0.2");
    const { packed, transfer } = packWindow(input);
    expect(transfer.map((b) => b.byteLength)).toEqual([input.links.length * 5 * 4, input.links.length * 4 * 8]);
    // What the worker receives is a structured clone of the message.
    const back = unpackWindow(structuredClone(packed, { transfer }));
    expect(back).toEqual(input);
    expect(viaPack.observe(back)).toEqual(direct.observe(input));
  }
  // The lossy agent's prober side was named (so the comparison above compared something).
  expect(direct.observe(window(5 * 15_000, "10.1.0.2")).explanations.map((e) => [e.scope, e.subject])).toContainEqual(["agent", "b/10.1.0.2"]);
});
