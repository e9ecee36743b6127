/**
 * The http kind's module schema against blackbox_exporter's own configuration: every
 * invalid-http-*.yml of its config/testdata (and invalid-no-versions-http3-enabled.yml) refused
 * with blackbox's message at the offending key, every http module of its example.yml and
 * blackbox-good.yml accepted (tests/fixtures/blackbox/). Also Prometheus common config's rules
 * (exclusive credentials, proxy settings, reserved http_headers) with its messages, the
 * deprecated no_follow_redirects, CEL compilation, files read relative to the probe file, and
 * redaction of every secret.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { parse } from "yaml";
import { PROBE_KINDS } from "../lib/probes/kinds.ts";
import type { HttpModule } from "../lib/rpc/gen/probermesh/v1/http_pb.ts";
import { makeCerts } from "./helpers/certs.ts";

const DIR = `${import.meta.dir}/fixtures/blackbox`;
const kind = PROBE_KINDS.http;

/** blackbox's modules.<name>.http of a file, the module-level timeout moved inside (as the probe file's modules: does). */
function httpModules(text: string): Record<string, Record<string, unknown>> {
  const doc = parse(text) as { modules: Record<string, { prober: string; timeout?: string; http?: Record<string, unknown> | null }> };
  return Object.fromEntries(
    Object.entries(doc.modules)
      .filter(([, m]) => m.prober === "http")
      .map(([name, m]) => [name, { ...(m.http ?? {}), ...(m.timeout ? { timeout: m.timeout } : {}) }]),
  );
}

/** The issues of parsing `keys` as an http module in `dir`: "path: message" lines. */
function issues(keys: unknown, dir = DIR): string[] {
  const r = kind.moduleSchema(dir).safeParse(keys);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}

const parseModule = (keys: unknown, dir = DIR): HttpModule => kind.moduleSchema(dir).parse(keys);

describe("blackbox_exporter's invalid http testdata", () => {
  /** File -> the first issue: blackbox's message (config/config_test.go) at the key it is about. */
  const VERDICTS: Record<string, string> = {
    "invalid-http-body-config.yml": "body_file: setting body and body_file both are not allowed",
    "invalid-http-body-match-regexp.yml": 'fail_if_body_matches_regexp.0: "Could not compile regular expression" regexp=":["',
    "invalid-http-body-not-match-regexp.yml": 'fail_if_body_not_matches_regexp.0: "Could not compile regular expression" regexp=":["',
    "invalid-http-header-match-regexp.yml": 'fail_if_header_not_matches.0.regexp: "Could not compile regular expression" regexp=":["',
    "invalid-http-header-match.yml": "fail_if_header_not_matches.0.regexp: regexp must be set for HTTP header matchers",
    "invalid-http-compression-mismatch.yml": 'headers.Accept-Encoding: invalid configuration "Accept-Encoding: deflate", "compression: gzip"',
    "invalid-http-compression-mismatch-special-case.yml": 'headers.accEpt-enCoding: invalid configuration "accEpt-enCoding: deflate", "compression: gzip"',
    "invalid-http-request-compression-reject-all-encodings.yml": 'headers.Accept-Encoding: invalid configuration "Accept-Encoding: *;q=0.0", "compression: gzip"',
    "invalid-http-http3-http2.yml": "valid_http_versions: HTTP/3 and HTTP/2.0/1.1 cannot be used together - only HTTP/3.0 is allowed when enable_http3 is true",
    "invalid-http-http3-http2-version.yml": "valid_http_versions: HTTP/3 and HTTP/2.0/1.1 cannot be used together - only HTTP/3.0 is allowed when enable_http3 is true",
    "invalid-http-http3-http2-enabled.yml": "enable_http2: when enable_http3 is true, enable_http2 must be set to false",
    "invalid-no-versions-http3-enabled.yml": "enable_http3: when enable_http3 is true, enable_http2 must be set to false",
  };
  for (const [file, first] of Object.entries(VERDICTS)) {
    test(`${file}: refused, first with blackbox's message at the key`, () => {
      const modules = httpModules(readFileSync(`${DIR}/${file}`, "utf8"));
      const [keys] = Object.values(modules);
      const got = issues(keys);
      expect(got[0]?.startsWith(first)).toBe(true);
      if (file.includes("http3")) expect(got.at(-1)).toMatch(/^enable_http3: enable_http3: true is not supported: HTTP\/3 runs over QUIC/);
    });
  }

  test("enable_http3: true is refused even when blackbox would take it; false is accepted", () => {
    expect(issues({ enable_http3: true, enable_http2: false, valid_http_versions: ["HTTP/3.0"] })).toEqual([
      "enable_http3: enable_http3: true is not supported: HTTP/3 runs over QUIC, and Bun (the agents' runtime) has no QUIC client; agents probe over HTTP/1.1 and HTTP/2",
    ]);
    expect(issues({ enable_http3: false })).toEqual([]);
    expect(issues({ valid_http_versions: ["HTTP/3.0"] })).toEqual(["valid_http_versions: HTTP/3 cannot be used as a valid HTTP version when enable_http3 is false"]);
  });
});

describe("blackbox_exporter's example http modules", () => {
  test("every http module of example.yml and blackbox-good.yml is accepted (the files they name pointed at ours)", async () => {
    const c = await makeCerts();
    const dir = mkdtempSync(`${tmpdir()}/pm-bbhttp-`);
    writeFileSync(`${dir}/body.txt`, '{"probe": true}\n');
    writeFileSync(`${dir}/api-key.txt`, "  key-from-file\n");
    const text = readFileSync(`${DIR}/http-example.yml`, "utf8").replaceAll("/files/body.txt", `${dir}/body.txt`).replaceAll("/path/to/api-key.txt", "api-key.txt").replaceAll("/certs/my_cert.crt", c.caFile);
    const modules = httpModules(text);
    expect(Object.keys(modules)).toHaveLength(15);
    const parsed: Record<string, HttpModule> = {};
    for (const [name, keys] of Object.entries(modules)) {
      expect({ name, issues: issues(keys, dir) }).toEqual({ name, issues: [] });
      parsed[name] = parseModule(keys, dir);
    }
    const ex = parsed.http_2xx_example!;
    expect([ex.validHttpVersions, ex.headers.Host, ex.httpHeaders["Accept-Language"]?.values, ex.noFollowRedirects, ex.ipProtocolFallback]).toEqual([["HTTP/1.1", "HTTP/2.0"], "vhost.example.com", ["en-US"], false, false]);
    expect(parsed.http_with_proxy!.proxy?.proxyUrl).toBe("http://127.0.0.1:3128");
    expect(parsed.http_with_proxy!.skipResolvePhaseWithProxy).toBe(true);
    expect(parsed.http_with_proxy_and_headers!.proxy?.proxyConnectHeader["Proxy-Authorization"]?.secrets).toEqual(["Bearer token"]);
    expect(parsed.http_post_body_file!.body).toBe('{"probe": true}\n');
    expect(parsed.http_json_cel_match!.failIfBodyJsonNotMatchesCel).toBe("body.foo == 'bar' && body.baz.startsWith('q')");
    const o = parsed.http_2xx_oauth_client_credentials!.oauth2!;
    expect([o.clientId, o.clientSecret, o.tokenUrl, o.endpointParams]).toEqual(["client_id", "client_secret", "https://api.example.com/token", { grant_type: "client_credentials" }]);
    expect(parsed.http_custom_ca_example!.tlsConfig?.caPem).toContain("BEGIN CERTIFICATE");
    expect([parsed.http_gzip!.compression, parsed.http_gzip_with_accept_encoding!.compression]).toEqual(["gzip", "gzip"]);
    expect(parsed.http_with_header_from_files!.httpHeaders["X-API-Key"]?.secrets).toEqual(["key-from-file"]);
    expect([parsed.good_http_2xx!.enableHttp2, parsed.good_http_2xx!.method, parsed.good_http_post_2xx!.bodySizeLimit]).toEqual([true, "GET", 1048576n]);
  });
});

describe("Prometheus common config's rules, with its messages", () => {
  const cases: [string, unknown, string][] = [
    ["bearer_token and its file", { bearer_token: "a", bearer_token_file: "f" }, "bearer_token_file: at most one of bearer_token & bearer_token_file must be configured"],
    ["basic_auth with bearer_token", { basic_auth: { username: "u" }, bearer_token: "a" }, "bearer_token: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"],
    ["username and its file", { basic_auth: { username: "u", username_file: "ba.txt" } }, "basic_auth.username_file: at most one of basic_auth username, username_file & username_ref must be configured"],
    ["password and its file", { basic_auth: { username: "u", password: "p", password_file: "ba.txt" } }, "basic_auth.password_file: at most one of basic_auth password, password_file & password_ref must be configured"],
    ["authorization with bearer_token", { authorization: { credentials: "x" }, bearer_token: "a" }, "authorization: authorization is not compatible with bearer_token & bearer_token_file"],
    ["credentials and their file", { authorization: { credentials: "x", credentials_file: "ba.txt" } }, "authorization.credentials_file: at most one of authorization credentials & credentials_file must be configured"],
    ["authorization type basic", { authorization: { type: " Basic ", credentials: "x" } }, 'authorization.type: authorization type cannot be set to "basic", use "basic_auth" instead'],
    ["authorization with basic_auth", { authorization: { credentials: "x" }, basic_auth: { username: "u" } }, "authorization: at most one of basic_auth, oauth2 & authorization must be configured"],
    ["oauth2 with basic_auth", { oauth2: { client_id: "i", token_url: "http://127.0.0.1/t" }, basic_auth: { username: "u" } }, "oauth2: at most one of basic_auth, oauth2 & authorization must be configured"],
    ["oauth2 without client_id", { oauth2: { token_url: "http://127.0.0.1/t" } }, "oauth2.client_id: oauth2 client_id must be configured"],
    ["oauth2 without token_url", { oauth2: { client_id: "i" } }, "oauth2.token_url: oauth2 token_url must be configured"],
    ["client_secret and its file", { oauth2: { client_id: "i", token_url: "http://127.0.0.1/t", client_secret: "s", client_secret_file: "ba.txt" } }, "oauth2.client_secret_file: at most one of oauth2 client_secret, client_secret_file & client_secret_ref must be configured using grant-type=client_credentials"],
    ["oauth2 jwt-bearer", { oauth2: { client_id: "i", token_url: "http://127.0.0.1/t", grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer" } }, "oauth2.grant_type: grant_type urn:ietf:params:oauth:grant-type:jwt-bearer is not supported"],
    ["oauth2 scope twice", { oauth2: { client_id: "i", token_url: "http://127.0.0.1/t", scopes: ["a"], endpoint_params: { scope: "b" } } }, 'oauth2.endpoint_params.scope: oauth2: cannot overwrite parameter "scope"'],
    ["oauth2's own proxy rules", { oauth2: { client_id: "i", token_url: "http://127.0.0.1/t", no_proxy: "x" } }, "oauth2.no_proxy: if no_proxy is configured, proxy_url must also be configured"],
    ["proxy_connect_header alone", { proxy_connect_header: { A: ["b"] } }, "proxy_connect_header: if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured"],
    ["proxy_from_environment with proxy_url", { proxy_from_environment: true, proxy_url: "http://127.0.0.1:3128" }, "proxy_url: if proxy_from_environment is configured, proxy_url must not be configured"],
    ["proxy_from_environment with no_proxy", { proxy_from_environment: true, no_proxy: "a" }, "no_proxy: if proxy_from_environment is configured, no_proxy must not be configured"],
    ["no_proxy alone", { no_proxy: "a" }, "no_proxy: if no_proxy is configured, proxy_url must also be configured"],
    ["a proxy scheme no agent speaks", { proxy_url: "ftp://127.0.0.1:21" }, "proxy_url: proxy scheme ftp is not supported"],
    ["a reserved http_headers name", { http_headers: { authorization: { values: ["x"] } } }, 'http_headers.authorization: setting header "Authorization" is not allowed'],
    ["a secret ref", { basic_auth: { username: "u", password_ref: "vault" } }, "basic_auth.password_ref: password_ref is not supported"],
    ["body and body_file", { body: "x", body_file: "ba.txt" }, "body_file: setting body and body_file both are not allowed"],
    ["an unknown compression", { compression: "zstd" }, 'compression: unsupported compression algorithm "zstd"'],
    ["no_follow_redirects contradicting follow_redirects", { follow_redirects: true, no_follow_redirects: true }, "no_follow_redirects: no_follow_redirects: true contradicts follow_redirects: true"],
    ["a CEL expression that does not compile", { fail_if_body_json_matches_cel: "foo.bar" }, `fail_if_body_json_matches_cel: "Could not compile CEL program" expression="foo.bar": undeclared reference to 'foo'`],
    ["an empty CEL expression", { fail_if_body_json_not_matches_cel: "" }, `fail_if_body_json_not_matches_cel: "Could not compile CEL program" expression="": empty expression`],
    ["a CEL syntax error", { fail_if_body_json_not_matches_cel: "body.x +" }, `fail_if_body_json_not_matches_cel: "Could not compile CEL program" expression="body.x +": `],
    ["a CEL function of an extension", { fail_if_body_json_not_matches_cel: "body.x.indexOf('a') == 0" }, "undeclared reference to 'indexOf'"],
    ["a header matcher without header", { fail_if_header_matches: [{ regexp: "a" }] }, "fail_if_header_matches.0.header: header name must be set for HTTP header matchers"],
  ];
  for (const [what, keys, message] of cases) {
    test(what, () => {
      const dir = mkdtempSync(`${tmpdir()}/pm-httpkind-`);
      writeFileSync(`${dir}/ba.txt`, "from-file\n");
      const got = issues(keys, dir);
      expect({ what, hit: got.some((g) => g.includes(message)), got }).toEqual({ what, hit: true, got });
    });
  }

  test("accepted forms: macros and type names in CEL, Accept-Encoding that allows compression, the deprecated name alone", () => {
    expect(issues({ fail_if_body_json_not_matches_cel: "body.items.exists(i, i.name == 'a') && type(body) == map && size(body) > 0" })).toEqual([]);
    expect(issues({ compression: "gzip", headers: { "Accept-Encoding": "br;q=1.0, gzip;q=0.9" } })).toEqual([]);
    expect(issues({ compression: "br", headers: { "accept-encoding": " gzip;q=1.0, compress; q=0.5, br;q=0.1, *; q=0.0 " } })).toEqual([]);
    expect(parseModule({ no_follow_redirects: true }).noFollowRedirects).toBe(true);
    expect(parseModule({ follow_redirects: false }).noFollowRedirects).toBe(true);
    expect(parseModule({ follow_redirects: false, no_follow_redirects: true }).noFollowRedirects).toBe(true);
    expect(parseModule({}).noFollowRedirects).toBe(false);
  });
});

describe("files, defaults and what agents receive", () => {
  test("secret files are read relative to the probe file and trimmed; authorization of type Bearer travels as bearer_token", () => {
    const dir = mkdtempSync(`${tmpdir()}/pm-httpkind-`);
    for (const f of ["user", "pass", "cred", "secret"]) writeFileSync(`${dir}/${f}.txt`, ` ${f}-value\n`);
    const m = parseModule({ basic_auth: { username_file: "user.txt", password_file: "pass.txt" } }, dir);
    expect([m.basicAuth?.username, m.basicAuth?.password]).toEqual(["user-value", "pass-value"]);
    const a = parseModule({ authorization: { credentials_file: "cred.txt" } }, dir);
    expect([a.bearerToken, a.authorization]).toEqual(["cred-value", undefined]);
    const t = parseModule({ authorization: { type: "Token", credentials: "abc" } }, dir);
    expect([t.bearerToken, t.authorization?.type, t.authorization?.credentials]).toEqual(["", "Token", "abc"]);
    expect(parseModule({ oauth2: { client_id: "i", client_secret_file: "secret.txt", token_url: "http://127.0.0.1/t" } }, dir).oauth2?.clientSecret).toBe("secret-value");
    expect(issues({ body_file: "missing.bin" }, dir)).toEqual([`body_file: cannot read ${dir}/missing.bin: ENOENT`]);
  });

  test("a body_file that is not UTF-8 goes as bytes; defaults are blackbox's except preferred_ip_protocol", () => {
    const dir = mkdtempSync(`${tmpdir()}/pm-httpkind-`);
    writeFileSync(`${dir}/bin`, Buffer.from([0, 0xff, 0xfe, 0x41]));
    const m = parseModule({ body_file: "bin" }, dir);
    expect([m.body, [...m.bodyBytes]]).toEqual(["", [0, 0xff, 0xfe, 0x41]]);
    const d = kind.defaultModule();
    expect([d.enableHttp2, d.noFollowRedirects, d.compression, d.preferredIpProtocol, d.ipProtocolFallback, d.bodySizeLimit]).toEqual([true, false, "", "ip4", true, 0n]);
  });

  test("redactModule hides every secret and nothing else", async () => {
    const c = await makeCerts();
    const secrets = ["s-bearer", "s-basic", "s-authz", "s-oauth", "s-hdr", "s-file", "s-connect", "s-proxypass", "s-oauthproxy"];
    const dir = mkdtempSync(`${tmpdir()}/pm-httpkind-`);
    writeFileSync(`${dir}/hdr.txt`, "s-file");
    const build = (extra: Record<string, unknown>) => parseModule({
      http_headers: { "X-Key": { values: ["plain-value"], secrets: ["s-hdr"], files: ["hdr.txt"] } },
      proxy_url: "http://user:s-proxypass@127.0.0.1:3128", proxy_connect_header: { "Proxy-Authorization": ["s-connect"] },
      tls_config: { cert_file: c.clientCert, key_file: c.clientKey }, headers: { Authorization: "s-bearer", "X-Plain": "plain-header" },
      ...extra,
    }, dir);
    const modules = [
      build({ bearer_token: "s-bearer" }),
      build({ basic_auth: { username: "u", password: "s-basic" } }),
      build({ authorization: { type: "Token", credentials: "s-authz" } }),
      build({ oauth2: { client_id: "id", client_secret: "s-oauth", token_url: "http://127.0.0.1/t", proxy_url: "http://u:s-oauthproxy@127.0.0.1:1" } }),
    ];
    for (const m of modules) {
      const shown = JSON.stringify(kind.moduleJson(kind.redactModule(m, "<secret>")));
      for (const s of secrets) expect({ s, leaked: shown.includes(s) }).toEqual({ s, leaked: false });
      expect(shown).not.toContain("PRIVATE KEY");
      for (const kept of ["plain-value", "plain-header", "127.0.0.1:3128", "user"]) expect(shown).toContain(kept);
    }
  });
});
