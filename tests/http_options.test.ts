/**
 * blackbox_exporter's HTTP module options, end to end: written in a probe file, parsed by the
 * server's config code (ca_file read there), turned into the protobuf module an agent receives,
 * and probed against real local servers (tests/helpers/http_servers.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { HttpPhaseProber } from "../lib/probes/http/prober.ts";
import { HttpTargetSchema, type HttpResult } from "../lib/rpc/gen/probermesh/v1/http_pb.ts";
import { ConfigError, parseProbeFile } from "../lib/targets/config.ts";
import { startTestServers, type TestServers } from "./helpers/http_servers.ts";

let srv: TestServers;
let dir = "";
beforeAll(async () => {
  srv = await startTestServers();
  dir = mkdtempSync(`${tmpdir()}/pm-opts-`);
});
afterAll(() => srv.close());

const prober = new HttpPhaseProber();

/** Probes `url` with the module written as YAML (the `http:` block of a probe file). */
async function probeWith(url: string, moduleYaml: string): Promise<HttpResult> {
  const file = `${dir}/probe.yaml`;
  const text = `prober_configs:\n  - prober_type: http\n    region: r\n    http:\n${moduleYaml.replace(/^/gm, "      ")}\n    targets: ["${url}"]\n`;
  writeFileSync(file, text);
  const block = parseProbeFile(text, file).blocks[0]!;
  if (block.proberType !== "http") throw new Error("not http");
  return prober.probe(create(HttpTargetSchema, { targetRegion: "r", url, module: block.module }));
}

const reasonOf = (r: HttpResult) => (r.success ? "ok" : r.failedReason);

describe("module options against local servers", () => {
  test("basic_auth and bearer_token send Authorization", async () => {
    const u = `http://127.0.0.1:${srv.httpPort}/auth`;
    expect(reasonOf(await probeWith(u, "timeout: 2s"))).toBe("status_code");
    expect(reasonOf(await probeWith(u, "basic_auth: {username: u, password: p}"))).toBe("ok");
    expect(reasonOf(await probeWith(u, "bearer_token: tok"))).toBe("ok");
    expect(reasonOf(await probeWith(u, "bearer_token: wrong"))).toBe("status_code");
  });

  test("valid_http_versions, fail_if_ssl and fail_if_not_ssl", async () => {
    const u = `http://127.0.0.1:${srv.httpPort}/ok`;
    const s = `https://localhost:${srv.httpsPort}/ok`;
    expect(reasonOf(await probeWith(u, 'valid_http_versions: ["HTTP/1.1"]'))).toBe("ok");
    const v = await probeWith(u, 'valid_http_versions: ["HTTP/2.0"]');
    expect([reasonOf(v), v.httpVersion]).toEqual(["http_version", "HTTP/1.1"]);
    expect(reasonOf(await probeWith(u, "fail_if_not_ssl: true"))).toBe("ssl");
    expect(reasonOf(await probeWith(u, "fail_if_ssl: true"))).toBe("ok");
    expect(reasonOf(await probeWith(s, "fail_if_ssl: true\ntls_config: {insecure_skip_verify: true}"))).toBe("ssl");
  });

  test("fail_if_header_matches / fail_if_header_not_matches (allow_missing)", async () => {
    const u = `http://127.0.0.1:${srv.httpPort}/headers`;
    expect(reasonOf(await probeWith(u, 'fail_if_header_matches: [{header: Cache-Control, regexp: "no-store"}]'))).toBe("header_regexp");
    // blackbox_exporter: a missing header fails fail_if_header_matches too, unless allow_missing.
    expect(reasonOf(await probeWith(u, 'fail_if_header_matches: [{header: X-Absent, regexp: ".*"}]'))).toBe("header_regexp");
    expect(reasonOf(await probeWith(u, 'fail_if_header_matches: [{header: X-Absent, regexp: ".*", allow_missing: true}]'))).toBe("ok");
    expect(reasonOf(await probeWith(u, 'fail_if_header_not_matches: [{header: x-probe, regexp: "^mesh-\\\\d$"}]'))).toBe("ok");
    expect(reasonOf(await probeWith(u, 'fail_if_header_not_matches: [{header: X-Probe, regexp: "^other"}]'))).toBe("header_regexp");
    expect(reasonOf(await probeWith(u, 'fail_if_header_not_matches: [{header: X-Absent, regexp: "."}]'))).toBe("header_regexp");
    expect(reasonOf(await probeWith(u, 'fail_if_header_not_matches: [{header: X-Absent, regexp: ".", allow_missing: true}]'))).toBe("ok");
  });

  test("body_size_limit", async () => {
    const u = `http://127.0.0.1:${srv.httpPort}/big?kb=64`;
    expect(reasonOf(await probeWith(u, "body_size_limit: 1MB"))).toBe("ok");
    const r = await probeWith(u, "body_size_limit: 16KiB");
    expect([reasonOf(r), r.error]).toEqual(["body_size_limit", "body larger than body_size_limit (16384 bytes)"]);
  });

  test("tls_config: ca_file (read by the server) and server_name", async () => {
    const byName = `https://localhost:${srv.httpsPort}/ok`;
    const byIp = `https://127.0.0.1:${srv.httpsPort}/ok`;
    expect(reasonOf(await probeWith(byName, "timeout: 2s"))).toBe("tls"); // unknown CA
    expect(reasonOf(await probeWith(byName, `tls_config: {ca_file: "${srv.caFile}"}`))).toBe("ok");
    expect(reasonOf(await probeWith(byIp, `tls_config: {ca_file: "${srv.caFile}"}`))).toBe("tls"); // no IP SAN
    expect(reasonOf(await probeWith(byIp, `tls_config: {ca_file: "${srv.caFile}", server_name: probe.test}`))).toBe("ok");
    expect(reasonOf(await probeWith(byIp, `tls_config: {ca_file: "${srv.caFile}", server_name: other.test}`))).toBe("tls");
  });

  test("preferred_ip_protocol with and without fallback (localhost)", async () => {
    const u = `http://localhost:${srv.httpPort}/ok`; // the server listens on 127.0.0.1 only
    expect(reasonOf(await probeWith(u, "preferred_ip_protocol: ip4"))).toBe("ok");
    const v6 = await probeWith(u, "preferred_ip_protocol: ip6\nip_protocol_fallback: false");
    // localhost has ::1 in /etc/hosts on most systems (connect refused: nothing on ::1), else no ip6 address
    expect(["connect", "resolve"]).toContain(reasonOf(v6));
  });
});

describe("module errors are config errors with the line", () => {
  const bad = (module: string) => {
    const text = `prober_configs:\n  - prober_type: http\n    region: r\n    http:\n${module.replace(/^/gm, "      ")}\n    targets: [a.example]\n`;
    try {
      parseProbeFile(text, "p.yaml");
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
    throw new Error("accepted a bad module");
  };
  test("unknown keys, wrong types, bad regexps, bad sizes, unreadable ca_file", () => {
    expect(bad("tls_config: {insecure: true}")).toBe('p.yaml:5: unknown key "insecure"');
    expect(bad("fail_if_ssl: yes please")).toMatch(/^p\.yaml:5: prober_configs\.0\.http\.fail_if_ssl: /);
    expect(bad('fail_if_header_matches: [{header: A, regexp: "("}]')).toMatch(/^p\.yaml:5: .*regexp: "Could not compile regular expression" regexp="\("/);
    expect(bad("body_size_limit: lots")).toMatch(/^p\.yaml:5: .*body_size_limit: must be a byte count/);
    expect(bad("preferred_ip_protocol: ip5")).toMatch(/^p\.yaml:5: .*preferred_ip_protocol/);
    expect(bad("tls_config:\n  ca_file: /nonexistent/ca.pem")).toBe("p.yaml:6: prober_configs.0.http.tls_config.ca_file: cannot read /nonexistent/ca.pem: ENOENT");
  });
});
