/**
 * The resolve deadline (docs/probes.md): a resolver that never answers fails a round as a resolve
 * failure within the module's timeout, and the target's next rounds still run.
 *
 * The bed: a network namespace whose /etc/netns/NAME/resolv.conf (bind-mounted over
 * /etc/resolv.conf by `ip netns exec`) points at tests/fixtures/silent_dns.ts on its 127.0.0.1,
 * which reads every query and never answers, with the resolver's own patience at its maximum
 * (`timeout:30 attempts:5`: 150 s before getaddrinfo gives up by itself). The probers run on the
 * agent's real Scheduler inside the namespace (tests/fixtures/probe_rounds.ts), which never
 * starts a target's round while its previous one runs: without a deadline the first round would
 * hold the target for 150 s and every round in between would be skipped.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { $ } from "bun";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { checkHttpResult } from "../lib/probes/http/ingest.ts";
import { checkIcmpResult, isIcmpFailure } from "../lib/probes/icmp/ingest.ts";
import { HttpResultSchema } from "../lib/rpc/gen/probermesh/v1/http_pb.ts";
import { IcmpResultSchema } from "../lib/rpc/gen/probermesh/v1/icmp_pb.ts";
import { netnsAvailable } from "./helpers/netns.ts";
import { ROOT, run, skipReason, start, type Proc } from "./helpers/procs.ts";

const available = await netnsAvailable();
if (!available) skipReason("resolve_deadline needs root and ip netns (a namespace with its own resolv.conf)");

const ROUNDS = 3;
const INTERVAL_MS = 1000;

describe.skipIf(!available)("a resolver that never answers", () => {
  const ns = `pm-rdl-${process.pid}`;
  let dns: Proc | undefined;

  beforeAll(async () => {
    await $`ip netns add ${ns}`.quiet();
    await $`ip -n ${ns} link set lo up`.quiet();
    mkdirSync(`/etc/netns/${ns}`, { recursive: true });
    writeFileSync(`/etc/netns/${ns}/resolv.conf`, "nameserver 127.0.0.1\noptions timeout:30 attempts:5\n");
    dns = start([process.execPath, `${ROOT}tests/fixtures/silent_dns.ts`, "{}"], ["ip", "netns", "exec", ns]);
    for (let i = 0; i < 100 && !dns.output().includes("ready"); i++) await Bun.sleep(50);
    if (!dns.output().includes("ready")) throw new Error(`silent DNS fixture did not start: ${dns.output()}`);
  });

  afterAll(async () => {
    await dns?.kill();
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    await $`ip netns del ${ns}`.quiet().nothrow();
  });

  /** Runs `rounds` scheduled rounds per target in the namespace; the results by target. */
  const rounds = async (kind: "icmp" | "http", module: object, targets: string[]) => {
    const r = await run(["ip", "netns", "exec", ns, process.execPath, `${ROOT}tests/fixtures/probe_rounds.ts`, JSON.stringify({ kind, module, targets, intervalMs: INTERVAL_MS, rounds: ROUNDS, maxMs: 60_000 })]);
    if (r.code !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as { results: Record<string, JsonValue[]>; complete: boolean };
  };

  test("ICMP: every round fails with 'resolve: ...' after the module's timeout, and the next round runs", async () => {
    const queriesBefore = (dns!.output().match(/^query/gm) ?? []).length;
    const out = await rounds("icmp", { timeout: "300ms", packet_count: 4, interval: "5ms" }, ["hang.test", "127.0.0.1"]);
    // Every round of the hanging name ended: none held the target, so none of the next was skipped.
    expect(out.complete).toBe(true);
    const hang = out.results["hang.test"]!.map((j) => fromJson(IcmpResultSchema, j));
    expect(hang).toHaveLength(ROUNDS);
    for (const r of hang) {
      expect(r.error).toBe("resolve: no answer from the resolver within 0.3s");
      expect([r.resolvedIp, r.sent, r.received]).toEqual(["", 0, 0]);
      // It waited for the deadline (a refused query would fail at once, with another message).
      expect(r.durationSeconds).toBeGreaterThanOrEqual(0.29); // a timer may fire a fraction of a ms early
      // The server takes it and counts it as a failed round (prober_icmp_failed).
      expect(checkIcmpResult(r)).toBe("");
      expect(isIcmpFailure(r)).toBe(true);
    }
    // The resolver was really asked. (Not once per round: Bun joins a lookup of a name to the one
    // still pending for it, so rounds 2 and 3 wait on round 1's queries, each until its own deadline.)
    expect((dns!.output().match(/^query/gm) ?? []).length - queriesBefore).toBeGreaterThanOrEqual(1);
    // A literal next to it is unaffected.
    for (const j of out.results["127.0.0.1"]!) {
      const r = fromJson(IcmpResultSchema, j);
      expect([r.error, r.sent, r.received]).toEqual(["", 4, 4]);
    }
  }, 90_000);

  test("HTTP: every probe fails with failed_reason resolve (not timeout) when the deadline runs out in DNS", async () => {
    const out = await rounds("http", { timeout: "300ms" }, ["http://hang.test:{port}/", "http://127.0.0.1:{port}/"]);
    expect(out.complete).toBe(true);
    const hang = out.results["http://hang.test:{port}/"]!.map((j) => fromJson(HttpResultSchema, j));
    expect(hang).toHaveLength(ROUNDS);
    for (const r of hang) {
      expect([r.success, r.failedReason]).toEqual([false, "resolve"]);
      expect(r.error).toStartWith("no answer from the resolver within 0.");
      expect([r.resolveSeconds, r.connectSeconds]).toEqual([0, 0]);
      expect(r.durationSeconds).toBeGreaterThanOrEqual(0.29); // a timer may fire a fraction of a ms early
      expect(checkHttpResult(r)).toBe("");
    }
    for (const j of out.results["http://127.0.0.1:{port}/"]!) expect(fromJson(HttpResultSchema, j).success).toBe(true);
  }, 90_000);
});
