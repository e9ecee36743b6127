/**
 * Credentials of the HTTP probe against local servers: authorization (type, credentials,
 * credentials_file), the precedence of a module's own Authorization header, OAuth2 client
 * credentials against tests/helpers/oauth2_server.ts (Basic then form client authentication,
 * scopes and endpoint_params, the token cache and its expiry, form answers, TLS and a proxy for
 * the token request, failures), and the rule that credentials stay with the first host across
 * redirects (Go's net/http and Prometheus common config): 127.0.0.1 and localhost are two hosts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { isDomainOrSubdomain } from "../lib/probes/http/headers.ts";
import { clearOAuth2Tokens } from "../lib/probes/http/oauth2.ts";
import { makeCerts, type TestCerts } from "./helpers/certs.ts";
import { probeWithKeys, reasonOf, startTestServers, type TestServers } from "./helpers/http_servers.ts";
import { startOAuth2Server, type OAuth2Server } from "./helpers/oauth2_server.ts";
import { startProxy, type TestProxy } from "./helpers/proxy.ts";

let srv: TestServers;
let certs: TestCerts;
let dir = "";
let cached: OAuth2Server; // no expires_in: cached for good
let expiring: OAuth2Server; // expires_in 10 s: within x/oauth2's 10 s delta at once
let formOnly: OAuth2Server; // refuses Basic, answers a form
let secure: OAuth2Server; // https
let proxy: TestProxy;
beforeAll(async () => {
  srv = await startTestServers();
  certs = await makeCerts();
  dir = mkdtempSync(`${tmpdir()}/pm-httpauth-`);
  const client = { clientId: "probe client", clientSecret: "s3cr:t" };
  cached = await startOAuth2Server(client);
  expiring = await startOAuth2Server({ ...client, expiresIn: 10 });
  formOnly = await startOAuth2Server({ ...client, paramsOnly: true, formAnswer: true, expiresIn: 10 });
  secure = await startOAuth2Server({ ...client, tls: { key: readFileSync(certs.serverKey, "utf8"), cert: readFileSync(certs.serverCert, "utf8") } });
  proxy = await startProxy();
});
afterAll(() => {
  srv.close();
  for (const s of [cached, expiring, formOnly, secure]) s.close();
  proxy.close();
});

const echo = (host = "127.0.0.1") => `http://${host}:${srv.httpPort}/echo`;
/** CEL on /echo's JSON: the Authorization it got ("" for none). */
const authIs = (v: string) => `('authorization' in body.headers ? body.headers.authorization : '') == '${v}'`;

describe("authorization", () => {
  test("type and credentials, credentials_file, Bearer by default", async () => {
    writeFileSync(`${dir}/cred`, "from-file\n");
    expect(reasonOf(await probeWithKeys(echo(), { authorization: { type: "Token", credentials: "abc" }, fail_if_body_json_not_matches_cel: authIs("Token abc") }))).toBe("ok");
    expect(reasonOf(await probeWithKeys(echo(), { authorization: { credentials_file: "cred" }, fail_if_body_json_not_matches_cel: authIs("Bearer from-file") }, dir))).toBe("ok");
    expect(reasonOf(await probeWithKeys(echo(), { basic_auth: { username: "u", password: "p" }, fail_if_body_json_not_matches_cel: authIs("Basic dTpw") }))).toBe("ok");
  });

  test("an Authorization in headers wins over basic_auth (common config does not overwrite a request's own)", async () => {
    expect(reasonOf(await probeWithKeys(echo(), { headers: { authorization: "Custom x" }, basic_auth: { username: "u", password: "p" }, fail_if_body_json_not_matches_cel: authIs("Custom x") }))).toBe("ok");
  });
});

describe("oauth2", () => {
  const oauth = (s: OAuth2Server, extra: Record<string, unknown> = {}) => ({ client_id: "probe client", client_secret: "s3cr:t", token_url: `${s.url}/token`, ...extra });
  const resource = (s: OAuth2Server) => `http://127.0.0.1:${s.port}/resource`;

  test("a token is fetched (client by HTTP Basic, scopes, endpoint_params, the probe's User-Agent), sent as Bearer, and cached", async () => {
    clearOAuth2Tokens();
    const keys = { oauth2: oauth(cached, { scopes: ["read", "write"], endpoint_params: { audience: "probes" } }), headers: { "User-Agent": "probe/oauth" } };
    const r = await probeWithKeys(resource(cached), keys);
    expect(reasonOf(r)).toBe("ok");
    expect(cached.requests).toEqual([{ auth: "basic", form: { grant_type: "client_credentials", scope: "read write", audience: "probes" }, userAgent: "probe/oauth" }]);
    expect(cached.resourceAuth).toEqual(["Bearer tok-1"]);
    expect(reasonOf(await probeWithKeys(resource(cached), keys))).toBe("ok");
    expect([cached.requests.length, cached.resourceAuth]).toEqual([1, ["Bearer tok-1", "Bearer tok-1"]]);
  });

  test("a token that expires within 10 s is fetched again for the next probe", async () => {
    clearOAuth2Tokens();
    for (let i = 0; i < 2; i++) expect(reasonOf(await probeWithKeys(resource(expiring), { oauth2: oauth(expiring) }))).toBe("ok");
    expect(expiring.issued).toEqual(["tok-1", "tok-2"]);
    expect(expiring.resourceAuth).toEqual(["Bearer tok-1", "Bearer tok-2"]);
  });

  test("a server that refuses Basic gets the client in the form (remembered), and may answer a form", async () => {
    clearOAuth2Tokens();
    for (let i = 0; i < 2; i++) expect(reasonOf(await probeWithKeys(resource(formOnly), { oauth2: oauth(formOnly) }))).toBe("ok");
    expect(formOnly.requests.map((q) => q.auth)).toEqual(["none", "params", "params"]);
    expect(formOnly.requests[1]!.form).toEqual({ grant_type: "client_credentials", client_id: "probe client", client_secret: "s3cr:t" });
  });

  test("token_url over TLS with oauth2.tls_config, and through oauth2's own proxy", async () => {
    clearOAuth2Tokens();
    expect(reasonOf(await probeWithKeys(`http://127.0.0.1:${secure.port}/resource`, { oauth2: oauth(secure) }))).toBe("oauth2"); // its CA is not trusted
    expect(reasonOf(await probeWithKeys(`https://localhost:${secure.port}/resource`, { oauth2: oauth(secure, { token_url: `https://localhost:${secure.port}/token`, tls_config: { ca_file: certs.caFile } }), tls_config: { ca_file: certs.caFile } }))).toBe("ok");
    clearOAuth2Tokens();
    const n = proxy.log.length;
    expect(reasonOf(await probeWithKeys(resource(cached), { oauth2: oauth(cached, { proxy_url: `http://127.0.0.1:${proxy.port}` }) }))).toBe("ok");
    expect(proxy.log.slice(n).map((e) => e.target)).toEqual([`http://127.0.0.1:${cached.port}/token`]);
  });

  test("no token, no request: a token endpoint that is down or refuses the client fails with oauth2", async () => {
    clearOAuth2Tokens();
    const before = cached.resourceAuth.length;
    const down = await probeWithKeys(resource(cached), { oauth2: oauth(cached, { token_url: "http://127.0.0.1:1/token" }) });
    expect([reasonOf(down), down.error.startsWith("token from http://127.0.0.1:1/token: ")]).toEqual(["oauth2", true]);
    const refused = await probeWithKeys(resource(cached), { oauth2: oauth(cached, { client_secret: "wrong" }) });
    expect([reasonOf(refused), refused.error]).toEqual(["oauth2", `token from ${cached.url}/token: oauth2: cannot fetch token: 401: {"error":"invalid_client"}`]);
    expect(cached.resourceAuth.length).toBe(before);
  });
});

describe("credentials stay with the first host", () => {
  const redirect = (to: string, from = "127.0.0.1") => `http://${from}:${srv.httpPort}/to?code=302&url=${encodeURIComponent(to)}`;
  const every = {
    basic_auth: { username: "u", password: "p" },
    headers: { Cookie: "c=1", "X-Plain": "kept" },
    http_headers: { "X-Secret": { secrets: ["s1"] }, "X-Value": { values: ["v1"] } },
  };
  const sent = "body.headers.authorization == 'Basic dTpw' && body.headers.cookie == 'c=1' && body.headers['x-secret'] == 's1'";
  const dropped = "!('authorization' in body.headers) && !('cookie' in body.headers) && !('x-secret' in body.headers) && body.headers['x-plain'] == 'kept' && body.headers['x-value'] == 'v1'";

  test("a redirect on the same host keeps them, to another host drops them, and they stay dropped on the way back", async () => {
    expect(reasonOf(await probeWithKeys(redirect("/echo"), { ...every, fail_if_body_json_not_matches_cel: sent }))).toBe("ok");
    expect(reasonOf(await probeWithKeys(redirect(echo("localhost")), { ...every, fail_if_body_json_not_matches_cel: dropped }))).toBe("ok");
    const back = redirect(redirect(echo("127.0.0.1"), "localhost"));
    const r = await probeWithKeys(back, { ...every, fail_if_body_json_not_matches_cel: dropped });
    expect([reasonOf(r), r.redirects]).toEqual(["ok", 2]);
    // The check above fails when they are sent: the same chain without credentials configured passes either way.
    expect(reasonOf(await probeWithKeys(redirect(echo("localhost")), { ...every, fail_if_body_json_not_matches_cel: sent }))).toBe("body_cel");
  });

  test("bearer, authorization and an OAuth2 token are not sent to another host either", async () => {
    for (const keys of [{ bearer_token: "t" }, { authorization: { type: "Token", credentials: "t" } }]) {
      expect(reasonOf(await probeWithKeys(redirect(echo("localhost")), { ...keys, fail_if_body_json_not_matches_cel: authIs("") }))).toBe("ok");
    }
    clearOAuth2Tokens();
    const r = await probeWithKeys(`http://127.0.0.1:${cached.port}/resource`, { oauth2: { client_id: "probe client", client_secret: "s3cr:t", token_url: `${cached.url}/token` } });
    expect(reasonOf(r)).toBe("ok");
    const n = cached.requests.length;
    expect(reasonOf(await probeWithKeys(redirect(echo("localhost")), { oauth2: { client_id: "probe client", client_secret: "s3cr:t", token_url: `${cached.url}/token` }, fail_if_body_json_not_matches_cel: authIs("") }))).toBe("ok");
    expect(cached.requests.length).toBe(n); // cached token used on the first hop, none on the second
  });

  test("Go's domain rule: the host or a subdomain of it", () => {
    expect(isDomainOrSubdomain("api.example.com", "example.com")).toBe(true);
    expect(isDomainOrSubdomain("EXAMPLE.com", "example.com")).toBe(true);
    expect(isDomainOrSubdomain("badexample.com", "example.com")).toBe(false);
    expect(isDomainOrSubdomain("example.com", "api.example.com")).toBe(false);
    expect(isDomainOrSubdomain("[::1]", "::1")).toBe(true);
    expect(isDomainOrSubdomain("1::1", "::1")).toBe(false);
  });

  test("a custom Host header goes through a relative redirect only (Go)", async () => {
    expect(reasonOf(await probeWithKeys(redirect("/echo"), { headers: { Host: "vhost.test" }, fail_if_body_json_not_matches_cel: "body.headers.host == 'vhost.test'" }))).toBe("ok");
    expect(reasonOf(await probeWithKeys(redirect(echo()), { headers: { Host: "vhost.test" }, fail_if_body_json_not_matches_cel: `body.headers.host == '127.0.0.1:${srv.httpPort}'` }))).toBe("ok");
  });
});
