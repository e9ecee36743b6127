/**
 * The grpc kind's common and server halves without a network: the `grpc:` module (blackbox's
 * <grpc_probe> names, defaults, validation, redaction), blackbox's own grpc modules
 * (tests/fixtures/blackbox/grpc-example.yml), target syntax, and the server's result checks and
 * metrics.
 */
import { drain } from "../lib/steps.ts";
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { parse } from "yaml";
import { SeriesStore } from "../lib/metrics/series.ts";
import { FAILED_REASONS } from "../lib/probes/grpc/failed_reason.ts";
import { checkGrpcResult, grpcIngest } from "../lib/probes/grpc/ingest.ts";
import { grpcKind } from "../lib/probes/grpc/kind.ts";
import { GrpcResultSchema, type GrpcModule, type GrpcResult } from "../lib/rpc/gen/probermesh/v1/grpc_pb.ts";
import { modulesSchema } from "../lib/targets/modules.ts";
import { ROOT } from "./helpers/procs.ts";

const dir = mkdtempSync(`${tmpdir()}/pm-grpc-`);
const parseModule = (v: unknown) => grpcKind.moduleSchema(dir).safeParse(v);
const moduleOf = (v: unknown): GrpcModule => grpcKind.moduleSchema(dir).parse(v);
const issues = (v: unknown) => {
  const r = parseModule(v);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
};

describe("module", () => {
  test("blackbox's grpc modules (blackbox-good.yml) parse, module-level timeout moved in", () => {
    const file = `${ROOT}tests/fixtures/blackbox/grpc-example.yml`;
    const modules = modulesSchema(dir).parse(parse(readFileSync(file, "utf8")).modules);
    const m = modules.grpc_health!;
    expect(m.prober).toBe("grpc");
    const g = m.module as GrpcModule;
    expect([g.service, g.tls, durationMs(g.timeout!)]).toEqual(["example", false, 10_000]);
    expect(g.metadata.map((e) => [e.key, e.value])).toEqual([["key", "value1"], ["key", "value2"], ["authorization", "Bearer token"]]);
    const withTimeout = modulesSchema(dir).parse({ g: { prober: "grpc", timeout: "3s", grpc: { service: "x" } } });
    expect(durationMs((withTimeout.g!.module as GrpcModule).timeout!)).toBe(3000);
  });

  test("defaults: service \"\", no TLS, 10s, ip4 with fallback, no metadata", () => {
    const d = grpcKind.defaultModule();
    expect([d.service, d.tls, durationMs(d.timeout!), d.preferredIpProtocol, d.ipProtocolFallback, d.metadata.length, d.tlsConfig?.insecureSkipVerify]).toEqual(["", false, 10_000, "ip4", true, 0, false]);
  });

  test("every key is carried into the protobuf module", () => {
    writeFileSync(`${dir}/ca.pem`, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    const m = moduleOf({ service: "svc", tls: true, timeout: "2500ms", preferred_ip_protocol: "ip6", ip_protocol_fallback: false, tls_config: { ca_file: "ca.pem", server_name: "n.test", insecure_skip_verify: true, min_version: "TLS12" }, metadata: { "X-Up": ["A"] } });
    expect([m.service, m.tls, durationMs(m.timeout!), m.preferredIpProtocol, m.ipProtocolFallback]).toEqual(["svc", true, 2500, "ip6", false]);
    expect([m.tlsConfig!.caPem.startsWith("-----BEGIN CERTIFICATE-----"), m.tlsConfig!.serverName, m.tlsConfig!.insecureSkipVerify, m.tlsConfig!.minVersion]).toEqual([true, "n.test", true, "TLS12"]);
    expect(m.metadata.map((e) => [e.key, e.value])).toEqual([["x-up", "A"]]); // keys lower-cased, values kept
  });

  test("refused: unknown keys, bad types, bad durations, unreadable files, cert without key", () => {
    expect(issues({ servce: "x" })[0]).toMatch(/servce/);
    expect(issues({ tls: "yes" })[0]).toMatch(/^tls:/);
    expect(issues({ timeout: "10" })[0]).toMatch(/^timeout: must be a positive duration/);
    expect(issues({ preferred_ip_protocol: "ip5" })[0]).toMatch(/^preferred_ip_protocol:/);
    expect(issues({ tls_config: { ca_file: "missing.pem" } })[0]).toMatch(/^tls_config\.ca_file: cannot read .*missing\.pem: ENOENT/);
    expect(issues({ tls_config: { cert_file: "ca.pem" } })).toContain("tls_config.key_file: client cert file specified without client key file");
    expect(issues({ metadata: { key: "one" } })[0]).toMatch(/^metadata\.key:/); // a list, as blackbox's metadata.MD
  });

  test("metadata: keys the prober sets or HTTP/2 forbids, bad key characters and non-ASCII values are refused; -bin takes bytes", () => {
    for (const k of ["content-type", "te", "grpc-timeout", "grpc-status", "connection", "Host"]) expect(issues({ metadata: { [k]: ["v"] } })[0]).toMatch(/is set by the prober/);
    expect(issues({ metadata: { "a b": ["v"] } })[0]).toMatch(/^metadata\.a b: metadata key "a b" may hold only/);
    expect(issues({ metadata: { note: ["caf\u00e9"] } })[0]).toMatch(/printable ASCII/);
    expect(issues({ metadata: { "note-bin": ["caf\u00e9"], "user-agent": ["me"] } })).toEqual([]);
  });

  test("redactModule hides the client key and credential-like metadata, nothing else", () => {
    const m = moduleOf({ metadata: { authorization: ["Bearer t"], "x-api-key": ["k"], "x-team": ["blue"] } });
    m.tlsConfig!.keyPem = "-----BEGIN PRIVATE KEY-----";
    m.tlsConfig!.certPem = "cert";
    const r = grpcKind.redactModule(m, "<secret>");
    expect(r.metadata.map((e) => [e.key, e.value])).toEqual([["authorization", "<secret>"], ["x-api-key", "<secret>"], ["x-team", "blue"]]);
    expect([r.tlsConfig!.keyPem, r.tlsConfig!.certPem]).toEqual(["<secret>", "cert"]);
    expect(m.metadata[0]!.value).toBe("Bearer t"); // a copy: the module itself keeps its secrets
    expect(JSON.stringify(grpcKind.moduleJson(r))).not.toContain("Bearer t");
  });
});

test("targets: host:port and [v6]:port, canonical; anything else refused", () => {
  const cases: [string, string | null][] = [
    ["grpc.example.com:443", "grpc.example.com:443"],
    ["GRPC.Example.com:0443", "grpc.example.com:443"],
    ["127.0.0.1:50051", "127.0.0.1:50051"],
    ["[::1]:50051", "[::1]:50051"],
    ["[2001:DB8:0:0::1]:9000", "[2001:db8::1]:9000"],
    ["::1:50051", null], // IPv6 needs brackets
    ["grpc.example.com", null], // no port: blackbox picks 80/443 by `tls`, which a target cannot know here
    ["grpc.example.com:0", null],
    ["grpc.example.com:65536", null],
    ["http://grpc.example.com:443", null],
    ["[127.0.0.1]:80", null],
    ["bad_host!:80", null],
    ["host:80/path", null],
  ];
  for (const [input, want] of cases) expect([input, grpcKind.normaliseTarget(input)]).toEqual([input, want]);
});

describe("server half", () => {
  const result = (x: Omit<Partial<GrpcResult>, "$typeName" | "$unknown"> = {}): GrpcResult =>
    create(GrpcResultSchema, { targetRegion: "t", address: "h:1", time: timestampFromMs(Date.now()), success: true, grpcStatusCode: 0, servingStatus: "SERVING", durationSeconds: 0.01, checkSeconds: 0.005, ...x });

  test("checkGrpcResult accepts real results and refuses impossible ones", () => {
    expect(checkGrpcResult(result())).toBe("");
    expect(checkGrpcResult(result({ success: false, failedReason: "not_serving", servingStatus: "NOT_SERVING" }))).toBe("");
    expect(checkGrpcResult(result({ success: false, failedReason: "grpc_status", grpcStatusCode: 12, servingStatus: "" }))).toBe("");
    expect(checkGrpcResult(result({ success: false, failedReason: "not_serving", servingStatus: "7" }))).toBe(""); // outside the enum, as Go prints it
    for (const reason of FAILED_REASONS) expect(checkGrpcResult(result({ success: false, failedReason: reason, servingStatus: "" }))).toBe("");
    expect(checkGrpcResult(result({ success: false, failedReason: "dns" }))).toMatch(/unknown failed_reason/);
    expect(checkGrpcResult(result({ grpcStatusCode: 17, success: false, failedReason: "grpc_status" }))).toBe("grpc_status_code out of range");
    expect(checkGrpcResult(result({ servingStatus: "GREAT" }))).toBe("unknown serving_status");
    expect(checkGrpcResult(result({ servingStatus: "NOT_SERVING" }))).toBe("success without grpc-status 0 and SERVING");
    expect(checkGrpcResult(result({ checkSeconds: -1 }))).toBe("phase out of range");
  });

  test("metrics: failures by reason, phases over successes, the latest status code", async () => {
    const store = new SeriesStore(60_000);
    const ingest = grpcIngest(store);
    const w = ingest.openWindow();
    const now = Date.now();
    const results = [
      result({ time: timestampFromMs(now), checkSeconds: 0.002 }),
      result({ time: timestampFromMs(now + 1), checkSeconds: 0.004 }),
      result({ time: timestampFromMs(now + 2), success: false, failedReason: "grpc_status", grpcStatusCode: 12, servingStatus: "" }),
    ];
    for (const r of results) {
      ingest.count({ sourceRegion: "s", agentIp: "a", result: r });
      w.add({ sourceRegion: "s", agentIp: "a", result: r });
    }
    drain(w.publish(now + 10));
    const text = await store.metrics();
    const L = 'source_region="s",target_region="t",target_addr="h:1"';
    expect(text).toContain(`prober_grpc_status_code{${L}} 12`);
    expect(text).toContain(`prober_grpc_failed{${L},failed_reason="grpc_status"} 1`);
    expect(text).toContain(`prober_grpc_duration_seconds{${L},phase="check"} 0.003`);
    expect(text).toContain(`prober_grpc_probes_total{${L}} 3`);
  });
});
