/**
 * What the HTTP probe sends and how it reads the answer, against the local servers of
 * tests/helpers/http_servers.ts: compression (Accept-Encoding sent, gzip / br / deflate decoded,
 * a body not in that coding fails), body_size_limit counted after decoding, the explicit body cap
 * for checks (body_too_large), body_file, headers and http_headers, CEL over JSON bodies, interim
 * 1xx answers skipped, cookies kept over redirects, and Go's method rules for redirects.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { BODY_CHECK_DEFAULT_BYTES } from "../lib/probes/http/defaults.ts";
import { COMPRESSED_TEXT, probeWithKeys, reasonOf, startTestServers, type TestServers } from "./helpers/http_servers.ts";

let srv: TestServers;
let h = "";
let dir = "";
beforeAll(async () => {
  srv = await startTestServers();
  h = `http://127.0.0.1:${srv.httpPort}`;
  dir = mkdtempSync(`${tmpdir()}/pm-httpbody-`);
});
afterAll(() => srv.close());

describe("compression", () => {
  for (const coding of ["gzip", "br", "deflate"]) {
    test(`${coding}: Accept-Encoding sent, body decoded (regexps see the text), both lengths reported`, async () => {
      const path = coding === "deflate" ? "/deflate" : `/${coding}`;
      const r = await probeWithKeys(`${h}${path}`, { compression: coding, fail_if_body_not_matches_regexp: ["^hello compressed world"] });
      expect(reasonOf(r)).toBe("ok");
      expect(r.uncompressedBodyLength).toBe(BigInt(COMPRESSED_TEXT.length));
      expect(r.contentLength).toBeLessThan(r.uncompressedBodyLength);
      // Without compression the coded bytes are what the checks see (blackbox does not decode).
      expect(reasonOf(await probeWithKeys(`${h}${path}`, { fail_if_body_not_matches_regexp: ["^hello compressed world"] }))).toBe("body_regexp");
    });
  }

  test("deflate also takes raw DEFLATE (Go's flate reader, which blackbox uses)", async () => {
    expect(reasonOf(await probeWithKeys(`${h}/deflate-raw`, { compression: "deflate", fail_if_body_not_matches_regexp: ["world"] }))).toBe("ok");
  });

  test("a body that is not in the coding fails (compression); identity passes it through", async () => {
    const r = await probeWithKeys(`${h}/gzip?lie=1`, { compression: "gzip" });
    expect(reasonOf(r)).toBe("compression");
    expect(r.error).toMatch(/^body is not gzip/);
    expect(reasonOf(await probeWithKeys(`${h}/br`, { compression: "gzip" }))).toBe("compression");
    expect(reasonOf(await probeWithKeys(`${h}/ok`, { compression: "identity", fail_if_body_not_matches_regexp: ["^ok body$"] }))).toBe("ok");
  });

  test("Accept-Encoding: compression's when headers has none, the module's own otherwise", async () => {
    expect(reasonOf(await probeWithKeys(`${h}/echo`, { compression: "identity", fail_if_body_json_not_matches_cel: "body.headers['accept-encoding'] == 'identity'" }))).toBe("ok");
    expect(reasonOf(await probeWithKeys(`${h}/echo`, { compression: "identity", headers: { "Accept-Encoding": "identity, gzip;q=0.5" }, fail_if_body_json_not_matches_cel: "body.headers['accept-encoding'] == 'identity, gzip;q=0.5'" }))).toBe("ok");
    expect(reasonOf(await probeWithKeys(`${h}/echo`, { fail_if_body_json_not_matches_cel: "!('accept-encoding' in body.headers)" }))).toBe("ok");
  });
});

describe("body size", () => {
  test("body_size_limit counts decoded bytes", async () => {
    const small = await probeWithKeys(`${h}/gzip`, { compression: "gzip", body_size_limit: COMPRESSED_TEXT.length });
    expect(reasonOf(small)).toBe("ok");
    const r = await probeWithKeys(`${h}/gzip`, { compression: "gzip", body_size_limit: COMPRESSED_TEXT.length - 1 });
    expect([reasonOf(r), r.error]).toEqual(["body_size_limit", `body larger than body_size_limit (${COMPRESSED_TEXT.length - 1} bytes)`]);
  });

  test("the body kept for checks is capped at BODY_CHECK_DEFAULT_BYTES: past it the probe fails body_too_large, never checks a cut body", async () => {
    const kb = BODY_CHECK_DEFAULT_BYTES / 1024 + 1;
    const r = await probeWithKeys(`${h}/big?kb=${kb}`, { fail_if_body_matches_regexp: ["nope"] });
    expect(reasonOf(r)).toBe("body_too_large");
    expect(r.error).toContain(`${BODY_CHECK_DEFAULT_BYTES} bytes kept`);
    // Without body checks nothing is kept and the size does not matter; with body_size_limit, that is the cap.
    expect(reasonOf(await probeWithKeys(`${h}/big?kb=${kb}`, {}))).toBe("ok");
    expect(reasonOf(await probeWithKeys(`${h}/big?kb=${kb}`, { fail_if_body_matches_regexp: ["nope"], body_size_limit: "4MiB" }))).toBe("ok");
    expect(reasonOf(await probeWithKeys(`${h}/big?kb=${kb - 2}`, { fail_if_body_matches_regexp: ["nope"] }))).toBe("ok");
  });
});

describe("request", () => {
  test("body_file (read by the server) is the request body; bytes that are not UTF-8 go as they are", async () => {
    writeFileSync(`${dir}/body.json`, '{"hello": "file"}');
    const b64 = Buffer.from('{"hello": "file"}').toString("base64");
    expect(reasonOf(await probeWithKeys(`${h}/echo`, { method: "POST", body_file: "body.json", fail_if_body_json_not_matches_cel: `body.body == '${b64}' && body.headers['content-length'] == '17'` }, dir))).toBe("ok");
    writeFileSync(`${dir}/body.bin`, Buffer.from([0, 0xff, 0x80, 0x41]));
    expect(reasonOf(await probeWithKeys(`${h}/echo`, { method: "PUT", body_file: "body.bin", fail_if_body_json_not_matches_cel: `body.body == '${Buffer.from([0, 0xff, 0x80, 0x41]).toString("base64")}'` }, dir))).toBe("ok");
  });

  test("http_headers: every value of values, secrets and files is added; headers' User-Agent and Host replace the defaults", async () => {
    writeFileSync(`${dir}/key.txt`, " from-file \n");
    const cel = "body.rawHeaders.filter(x, x == 'v1' || x == 'v2' || x == 's1' || x == 'from-file').size() == 4 && body.headers['user-agent'] == 'probe/1' && body.headers['host'] == 'vhost.test'";
    expect(reasonOf(await probeWithKeys(`${h}/echo`, { headers: { "user-agent": "probe/1", host: "vhost.test" }, http_headers: { "X-Multi": { values: ["v1", "v2"], secrets: ["s1"], files: ["key.txt"] } }, fail_if_body_json_not_matches_cel: cel }, dir))).toBe("ok");
    expect(reasonOf(await probeWithKeys(`${h}/echo`, { fail_if_body_json_not_matches_cel: "body.headers['user-agent'].startsWith('ProberMesh/')" }))).toBe("ok");
  });

  test("redirects: 301/302/303 turn POST into a GET without body, 307/308 keep both (Go's rules)", async () => {
    const to = (code: number) => `${h}/to?code=${code}&url=%2Fecho`;
    for (const [code, method, body] of [[301, "GET", ""], [302, "GET", ""], [303, "GET", ""], [307, "POST", "x=1"], [308, "POST", "x=1"]] as const) {
      const r = await probeWithKeys(to(code), { method: "POST", body: "x=1", fail_if_body_json_not_matches_cel: `body.method == '${method}' && body.body == '${Buffer.from(body).toString("base64")}'` });
      expect({ code, reason: reasonOf(r), redirects: r.redirects }).toEqual({ code, reason: "ok", redirects: 1 });
    }
  });

  test("follow_redirects: false (and its deprecated name no_follow_redirects: true) checks the redirect itself", async () => {
    for (const keys of [{ follow_redirects: false }, { no_follow_redirects: true }]) {
      const r = await probeWithKeys(`${h}/redirect/1`, keys);
      expect([reasonOf(r), r.statusCode, r.redirects]).toEqual(["status_code", 302, 0]);
    }
    const followed = await probeWithKeys(`${h}/redirect/1`, { follow_redirects: true });
    expect([reasonOf(followed), followed.redirects]).toEqual(["ok", 2]);
  });

  test("a cookie set on a redirect is sent on (a jar per probe, as blackbox)", async () => {
    expect(reasonOf(await probeWithKeys(`${h}/cookie/set`, {}))).toBe("ok");
    expect(reasonOf(await probeWithKeys(`${h}/cookie/check`, {}))).toBe("status_code");
  });
});

describe("CEL over the JSON body", () => {
  const json = () => `${h}/json`;
  test("blackbox's example expression; matches / not matches", async () => {
    expect(reasonOf(await probeWithKeys(json(), { fail_if_body_json_not_matches_cel: "body.foo == 'bar' && body.baz.startsWith('q')" }))).toBe("ok");
    const r = await probeWithKeys(json(), { fail_if_body_json_not_matches_cel: "body.foo == 'nope'" });
    expect([reasonOf(r), r.error]).toEqual(["body_cel", `body did not match CEL expression "body.foo == 'nope'"`]);
    expect(reasonOf(await probeWithKeys(json(), { fail_if_body_json_matches_cel: "body.n == 1 && body.items[0].name == 'a'" }))).toBe("body_cel");
    expect(reasonOf(await probeWithKeys(json(), { fail_if_body_json_matches_cel: "body.n > 1" }))).toBe("ok");
  });

  test("a body that is not JSON, an evaluation error, a result that is not a boolean: all fail", async () => {
    const notJson = await probeWithKeys(`${h}/ok`, { fail_if_body_json_matches_cel: "false" });
    expect([reasonOf(notJson), notJson.error.startsWith("body is not JSON")]).toEqual(["body_cel", true]);
    const missing = await probeWithKeys(json(), { fail_if_body_json_not_matches_cel: "body.missing == 1" });
    expect([reasonOf(missing), missing.error.startsWith("error evaluating CEL expression")]).toEqual(["body_cel", true]);
    const notBool = await probeWithKeys(json(), { fail_if_body_json_not_matches_cel: "body.foo" });
    expect([reasonOf(notBool), notBool.error]).toEqual(["body_cel", `CEL expression "body.foo" did not give a boolean`]);
  });
});

describe("interim responses", () => {
  test("103 Early Hints and 100 Continue are skipped: the final answer is checked", async () => {
    const r = await probeWithKeys(`${h}/interim?n=2`, { fail_if_body_not_matches_regexp: ["^final$"] });
    expect([reasonOf(r), r.statusCode]).toEqual(["ok", 200]);
    expect([reasonOf(await probeWithKeys(`${h}/interim?n=1`, { valid_status_codes: [200] })), (await probeWithKeys(`${h}/interim?n=5`, {})).statusCode]).toEqual(["ok", 200]);
  });

  test("more than 5 interim answers is a protocol error (Go's limit)", async () => {
    const r = await probeWithKeys(`${h}/interim?n=6`, {});
    expect([reasonOf(r), r.error]).toEqual(["http_protocol", "too many 1xx informational responses (more than 5)"]);
  });
});
