/**
 * The icmp kind's blackbox_exporter options (docs/kinds/icmp.md): the `icmp:` module schema
 * against blackbox's own testdata (tests/fixtures/blackbox/: invalid-icmp-ttl*.yml refused at
 * `ttl` with blackbox's messages, the icmp modules of blackbox-good.yml and example.yml accepted,
 * their module-level timeout moved into the icmp keys), each key's validation and default, what
 * an agent makes of a module from an older server, and, on loopback with raw sockets (root), the
 * engine's sockets with settings: shared per distinct settings, closed when idle, bounded, never
 * mixing their replies with the shared socket's (a raw one filters them in the kernel). Paths with routers, MTUs, sources and names:
 * tests/icmp_module_paths.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { ICMP_DEFAULTS } from "../lib/probes/icmp/defaults.ts";
import { MAX_VARIANT_SOCKETS } from "../lib/probes/icmp/engine_variants.ts";
import { IcmpEngine } from "../lib/probes/icmp/engine.ts";
import { icmpKind } from "../lib/probes/icmp/kind.ts";
import { encodeSockaddr } from "../lib/probes/icmp/libc.ts";
import { writeEchoRequest } from "../lib/probes/icmp/packet.ts";
import { IcmpEchoProber, echoOptions } from "../lib/probes/icmp/prober.ts";
import { IcmpSocket } from "../lib/probes/icmp/socket.ts";
import { IcmpModuleSchema } from "../lib/rpc/gen/probermesh/v1/icmp_pb.ts";
import { modulesSchema } from "../lib/targets/modules.ts";
import { ROOT, skipReason } from "./helpers/procs.ts";

const DIR = `${ROOT}tests/fixtures/blackbox`;
const schema = icmpKind.moduleSchema("/");

/** blackbox's `modules:` of a fixture, each module's `icmp:` keys with the module-level timeout moved in. */
function icmpSections(file: string): Record<string, Record<string, unknown>> {
  const doc = parse(readFileSync(`${DIR}/${file}`, "utf8")) as { modules: Record<string, { prober: string; timeout?: string; icmp?: Record<string, unknown> }> };
  return Object.fromEntries(Object.entries(doc.modules).map(([name, m]) => [name, { ...(m.icmp ?? {}), ...(m.timeout ? { timeout: m.timeout } : {}) }]));
}

/** Issues of parsing `keys` as an icmp module: [path, message]. */
function issues(keys: unknown): [string, string][] {
  const r = schema.safeParse(keys);
  return r.success ? [] : r.error.issues.map((i) => [i.path.join("."), i.message]);
}

describe("blackbox_exporter's icmp testdata through the icmp module schema", () => {
  test("invalid-icmp-ttl.yml and invalid-icmp-ttl-overflow.yml are refused at ttl with blackbox's messages (config.go ICMPProbe.UnmarshalYAML)", () => {
    expect(issues(icmpSections("invalid-icmp-ttl.yml")["icmp_test"])).toEqual([["ttl", '"ttl" cannot be negative']]);
    expect(issues(icmpSections("invalid-icmp-ttl-overflow.yml")["icmp_test"])).toEqual([["ttl", '"ttl" cannot exceed 255']]);
    // The same through the probe file's modules: map (what -check.config reports, path and all).
    for (const [file, message] of [["invalid-icmp-ttl.yml", '"ttl" cannot be negative'], ["invalid-icmp-ttl-overflow.yml", '"ttl" cannot exceed 255']] as const) {
      const r = modulesSchema("/").safeParse(parse(readFileSync(`${DIR}/${file}`, "utf8")).modules);
      expect(r.success ? [] : r.error.issues.map((i) => [i.path.join("."), i.message])).toEqual([["icmp_test.icmp.ttl", message]]);
    }
  });

  test("the icmp modules of blackbox-good.yml and example.yml are accepted, with their timeout, family and source", () => {
    const sections = icmpSections("icmp-example.yml");
    expect(Object.keys(sections)).toEqual(["icmp_test", "icmp_example"]);
    const test_ = schema.parse(sections["icmp_test"]);
    const example = schema.parse(sections["icmp_example"]);
    expect({ timeout: test_.timeout, prefer: test_.preferredIpProtocol, fallback: test_.ipProtocolFallback, source: test_.sourceIpAddress, ttl: test_.ttl, df: test_.dontFragment })
      .toEqual({ timeout: durationFromMs(5000), prefer: "ip4", fallback: true, source: "", ttl: 0, df: false });
    expect({ prefer: example.preferredIpProtocol, source: example.sourceIpAddress }).toEqual({ prefer: "ip4", source: "127.0.0.1" });
    // And as a whole modules: map (the module-level timeout moved in by lib/targets/modules.ts).
    const all = modulesSchema("/").parse(parse(readFileSync(`${DIR}/icmp-example.yml`, "utf8")).modules);
    expect(all["icmp_example"]).toEqual({ prober: "icmp", module: example });
  });
});

describe("each key: validation and default", () => {
  test("ttl: 0..255 integers; 0 and absent mean the system's TTL (blackbox: 0 leaves the socket's)", () => {
    expect([0, 1, 64, 255].map((ttl) => schema.parse({ ttl }).ttl)).toEqual([0, 1, 64, 255]);
    expect(schema.parse({}).ttl).toBe(0);
    expect(issues({ ttl: 1.5 })[0]?.[0]).toBe("ttl");
    expect(issues({ ttl: "64" })[0]?.[0]).toBe("ttl");
  });

  test("payload_size: 0 is the default (as blackbox's 0), 8..65507, the first 8 bytes hold the agent's token", () => {
    expect([0, 8, 1472, 65_507].map((payload_size) => schema.parse({ payload_size }).payloadSize)).toEqual([ICMP_DEFAULTS.payloadSize, 8, 1472, 65_507]);
    expect(issues({ payload_size: 7 })).toEqual([["payload_size", "payload_size must be 0 (the default) or at least 8: the first 8 payload bytes carry the agent's token"]]);
    expect(issues({ payload_size: 65_508 })).toEqual([["payload_size", "payload_size cannot exceed 65507 (the largest echo an IPv4 packet holds)"]]);
    expect(issues({ payload_size: -1 })).toEqual([["payload_size", "payload_size cannot be negative"]]);
  });

  test("source_ip_address must be an IP literal; preferred_ip_protocol ip4 or ip6; booleans are booleans", () => {
    expect(issues({ source_ip_address: "agent.example" })).toEqual([["source_ip_address", "must be an IPv4 or IPv6 address"]]);
    expect(schema.parse({ source_ip_address: "::1" }).sourceIpAddress).toBe("::1");
    expect(issues({ preferred_ip_protocol: "ip5" })[0]?.[0]).toBe("preferred_ip_protocol");
    expect(issues({ dont_fragment: "yes" })[0]?.[0]).toBe("dont_fragment");
    expect(issues({ ip_protocol_fallback: 1 })[0]?.[0]).toBe("ip_protocol_fallback");
    expect(issues({ ttl: 1, bogus: true })[0]?.[1]).toContain("bogus");
  });

  test("defaults: ProberMesh's round, ip4 first with fallback (blackbox: ip6 first), no DF, system TTL, kernel's source", () => {
    const m = icmpKind.defaultModule();
    expect({ ...m, $typeName: undefined }).toEqual({
      ...create(IcmpModuleSchema, {
        packetCount: 64, interval: durationFromMs(15), payloadSize: 64, timeout: durationFromMs(5000),
        ttl: 0, dontFragment: false, sourceIpAddress: "", preferredIpProtocol: "ip4", ipProtocolFallback: true,
      }),
      $typeName: undefined,
    });
  });

  test("an agent's round options: settings only when set (the shared sockets otherwise); a module from a server before 0.5 resolves ip4 first with fallback", () => {
    const plain = echoOptions(schema.parse({ packet_count: 3 }));
    expect([plain.ttl, plain.dontFragment, plain.sourceIp, plain.prefer, plain.fallback]).toEqual([undefined, undefined, undefined, "ip4", true]);
    const set = echoOptions(schema.parse({ ttl: 7, dont_fragment: true, source_ip_address: "::1", preferred_ip_protocol: "ip6", ip_protocol_fallback: false }));
    expect([set.ttl, set.dontFragment, set.sourceIp, set.prefer, set.fallback]).toEqual([7, true, "::1", "ip6", false]);
    // Fields 1-4 only, as a 0.4 server sends: fields 5-9 read as zero values.
    const old = echoOptions(create(IcmpModuleSchema, { packetCount: 3, interval: durationFromMs(15), payloadSize: 64, timeout: durationFromMs(5000) }));
    expect([old.ttl, old.dontFragment, old.sourceIp, old.prefer, old.fallback]).toEqual([undefined, undefined, undefined, "ip4", true]);
  });
});

const root = process.getuid?.() === 0;
if (!root) skipReason("icmp_module loopback tests need root (raw ICMP sockets on 127.0.0.1 and ::1)");

describe.skipIf(!root)("sockets with settings on loopback (raw sockets, root)", () => {
  const round = { count: 5, intervalMs: 2, payloadSize: 56, timeoutMs: 1000 };

  test("example.yml's icmp_example module (source 127.0.0.1, ip4) probes 127.0.0.1 from its own socket, bound to that source", async () => {
    const module = schema.parse(icmpSections("icmp-example.yml")["icmp_example"]);
    const prober = new IcmpEchoProber(new IcmpEngine("raw"));
    try {
      const r = await prober.probe(icmpKind.target("t", "127.0.0.1", { ...module, packetCount: 5 }));
      expect({ sent: r.sent, received: r.received, error: r.error, resolvedIp: r.resolvedIp }).toEqual({ sent: 5, received: 5, error: "", resolvedIp: "127.0.0.1" });
      expect(prober.engine.variantSockets()).toEqual([{ key: "4|0|0|127.0.0.1", kind: "raw", users: 0 }]);
    } finally {
      prober.close();
    }
  });

  test("rounds with equal settings share one socket, other settings get their own, and each closes once idle", async () => {
    const e = new IcmpEngine("raw", 1 << 20, undefined, 200);
    try {
      const rounds = [
        e.echo("127.0.0.1", { ...round, ttl: 9 }), e.echo("127.0.0.2", { ...round, ttl: 9 }),
        e.echo("127.0.0.1", { ...round, ttl: 9, dontFragment: true }), e.echo("::1", { ...round, ttl: 9 }),
        e.echo("127.0.0.3", { ...round, sourceIp: "127.0.0.1" }),
      ];
      expect(e.variantSockets().map((v) => [v.key, v.users])).toEqual([["4|9|0|", 2], ["4|9|1|", 1], ["6|9|0|", 1], ["4|0|0|127.0.0.1", 1]]);
      const outs = await Promise.all(rounds);
      expect(outs.map((o) => [o.received, o.duplicates, o.error])).toEqual(outs.map(() => [5, 0, ""]));
      expect(e.variantSockets().map((v) => v.users)).toEqual([0, 0, 0, 0]);
      for (let i = 0; i < 100 && e.variantSockets().length > 0; i++) await Bun.sleep(50);
      expect(e.variantSockets()).toEqual([]);
    } finally {
      e.close();
    }
  });

  test("a round on the shared socket and one with a ttl to the same address at once: neither counts the other's replies", async () => {
    const e = new IcmpEngine("raw");
    try {
      const [plain, ttl] = await Promise.all([e.echo("127.0.0.1", { ...round, count: 50 }), e.echo("127.0.0.1", { ...round, count: 50, ttl: 3 })]);
      expect([plain.received, plain.duplicates, ttl.received, ttl.duplicates]).toEqual([50, 0, 50, 0]);
      expect({ unmatched: e.stats.unmatched, late: e.stats.late }).toEqual({ unmatched: 0, late: 0 });
    } finally {
      e.close();
    }
  });

  test(`at most ${MAX_VARIANT_SOCKETS} settings at once: one more fails its round with why; an idle socket makes room`, async () => {
    const e = new IcmpEngine("raw", 1 << 20);
    try {
      const busy = Array.from({ length: MAX_VARIANT_SOCKETS }, (_, i) => e.echo("127.0.0.1", { ...round, count: 2, intervalMs: 300, ttl: i + 1 }));
      expect(() => e.echo("127.0.0.1", { ...round, ttl: 200 })).toThrow(`more than ${MAX_VARIANT_SOCKETS} distinct (ttl, dont_fragment, source_ip_address) settings in use at once`);
      expect((await Promise.all(busy)).every((o) => o.received === 2)).toBe(true);
      const after = await e.echo("127.0.0.1", { ...round, ttl: 200 });
      expect(after.received).toBe(5);
      expect(e.variantSockets().length).toBe(MAX_VARIANT_SOCKETS);
    } finally {
      e.close();
    }
  });

  test("a raw socket with settings gets only replies carrying its identifier (kernel filter): another raw socket's replies never reach it, IPv4 and IPv6", async () => {
    for (const v6 of [false, true]) {
      const other = new IcmpSocket(v6, 1 << 20, "raw", "replies");
      const own = new IcmpSocket(v6, 1 << 20, "raw", "replies", undefined, { ownIdentifierOnly: true }, new Set([other.identifier]));
      const unfiltered = new IcmpSocket(v6, 1 << 20, "raw", "replies", undefined, {}, new Set([other.identifier, own.identifier]));
      try {
        const sockaddr = encodeSockaddr(v6 ? "::1" : "127.0.0.1");
        const packet = new Uint8Array(8 + 16);
        const token = new Uint8Array(8).fill(7);
        const idsSeen = (s: IcmpSocket) => {
          const ids: number[] = [];
          // Only this test's replies (its token): other processes on the host may be pinging too.
          s.drain((d) => {
            if (d.buf.subarray(d.icmpOffset + 8, d.icmpOffset + 16).every((b) => b === 7)) ids.push((d.buf[d.icmpOffset + 4]! << 8) | d.buf[d.icmpOffset + 5]!);
          });
          return ids;
        };
        for (let seq = 0; seq < 5; seq++) {
          writeEchoRequest(packet, v6, other.identifier, seq, token);
          expect(other.send(packet, sockaddr)).toBeGreaterThan(0);
        }
        writeEchoRequest(packet, v6, own.identifier, 9, token);
        expect(own.send(packet, sockaddr)).toBeGreaterThan(0);
        await Bun.sleep(100);
        // The unfiltered one shows what a raw socket gets without the filter: everybody's replies.
        expect({ own: idsSeen(own), unfiltered: idsSeen(unfiltered).sort() }).toEqual({ own: [own.identifier], unfiltered: [...Array(5).fill(other.identifier), own.identifier].sort() });
      } finally {
        for (const s of [other, own, unfiltered]) s.close();
      }
    }
  });

  test("a source of the other family than the target fails the round before anything is sent, naming both", async () => {
    const prober = new IcmpEchoProber(new IcmpEngine("raw"));
    try {
      const r = await prober.probe(icmpKind.target("t", "::1", schema.parse({ source_ip_address: "127.0.0.1", packet_count: 2 })));
      expect({ sent: r.sent, error: r.error }).toEqual({
        sent: 0, error: "source_ip_address 127.0.0.1 is not an IPv6 address and the target ::1 is: the families must match (preferred_ip_protocol picks a name's family)",
      });
      expect(prober.engine.stats.sent).toBe(0);
    } finally {
      prober.close();
    }
  });
});
