/** The inference of the direction a silent region cannot report (lib/server/unreachable.ts). */
import { expect, test } from "bun:test";
import { inferUnreachable, type KnownAgent, type PublishedPair } from "../lib/server/unreachable.ts";

const link = (address: string, sent: number, received: number) => ({ address, sent, received, lossRatio: sent ? (sent - received) / sent : 1 });
const agents: KnownAgent[] = [
  { region: "a", ip: "10.0.0.1", alive: true },
  { region: "b", ip: "10.0.0.2", alive: true },
  { region: "cut", ip: "10.0.0.3", alive: false },
  { region: "cut", ip: "10.0.0.4", alive: false },
];

test("a region whose agents are silent and unreachable gets its outbound pairs published as unreachable", () => {
  const published: PublishedPair[] = [
    { sourceRegion: "a", targetRegion: "cut", links: [link("10.0.0.3", 64, 0), link("10.0.0.4", 64, 0)] },
    { sourceRegion: "b", targetRegion: "cut", links: [link("10.0.0.3", 64, 0), link("10.0.0.4", 64, 0)] },
    { sourceRegion: "a", targetRegion: "b", links: [link("10.0.0.2", 64, 64)] },
  ];
  expect(inferUnreachable(published, agents)).toEqual([
    { sourceRegion: "cut", targetRegion: "a", forwardLoss: 1 },
    { sourceRegion: "cut", targetRegion: "b", forwardLoss: 1 },
  ]);
});

test("an agent process that crashed on a live host is not inferred: its kernel answers, the forward loss is 0", () => {
  const published: PublishedPair[] = [{ sourceRegion: "a", targetRegion: "cut", links: [link("10.0.0.3", 64, 64), link("10.0.0.4", 64, 64)] }];
  expect(inferUnreachable(published, agents)).toEqual([]);
});

test("partial loss, a live agent in the region, or a reported reverse direction infer nothing", () => {
  const lossy: PublishedPair[] = [{ sourceRegion: "a", targetRegion: "cut", links: [link("10.0.0.3", 64, 0), link("10.0.0.4", 64, 32)] }];
  expect(inferUnreachable(lossy, agents)).toEqual([]);
  const allLost: PublishedPair[] = [{ sourceRegion: "a", targetRegion: "cut", links: [link("10.0.0.3", 64, 0), link("10.0.0.4", 64, 0)] }];
  expect(inferUnreachable(allLost, [...agents, { region: "cut", ip: "10.0.0.5", alive: true }])).toEqual([]);
  const reported: PublishedPair[] = [...allLost, { sourceRegion: "cut", targetRegion: "a", links: [link("10.0.0.1", 64, 0)] }];
  expect(inferUnreachable(reported, agents)).toEqual([]);
});

test("only probes of the silent agents themselves count: a lost file target of the region infers nothing", () => {
  const published: PublishedPair[] = [{ sourceRegion: "a", targetRegion: "cut", links: [link("192.0.2.7", 64, 0)] }];
  expect(inferUnreachable(published, agents)).toEqual([]);
});
