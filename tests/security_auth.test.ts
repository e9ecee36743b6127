/**
 * docs/security.md through the compiled binaries: agent tokens (missing, wrong, region-limited,
 * rotated on SIGHUP), secrets kept out of /-/targets and logs yet delivered to authenticated agents,
 * secure-by-default start-up, TLS and mutual TLS on the RPC port (certificates re-read on SIGHUP),
 * and the exporter-toolkit web config on the HTTP side.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { makeCerts, type TestCerts } from "./helpers/certs.ts";
import { createNsPair, netnsAvailable } from "./helpers/netns.ts";
import { AGENT_BIN, SERVER_BIN, freePort, killAll, run, samples, scrape, start, waitFor, type Proc } from "./helpers/procs.ts";

const SVC = "probermesh.v1.ProberMeshService";
const TOKEN_A = "tokenA-0123456789abcdef0123456789";
const TOKEN_LIM = "tokenL-0123456789abcdef0123456789";
const TOKEN_NEW = "tokenN-0123456789abcdef0123456789";
const BEARER_SECRET = "bearer-secret-7f3a9c";
const PASSWORD_SECRET = "password-secret-51d2e8";
const dir = mkdtempSync(`${tmpdir()}/pm-sec-`);
const file = (name: string, text: string) => {
  writeFileSync(`${dir}/${name}`, text);
  return `${dir}/${name}`;
};
let certs: TestCerts;
beforeAll(async () => {
  certs = await makeCerts();
});
afterAll(killAll);

/** A Connect call with curl; @returns HTTP status and parsed body. */
async function call(url: string, method: string, body: unknown, extra: string[] = []) {
  const r = await run(["curl", "-sS", "-w", "\n%{http_code}", ...extra, "-H", "Content-Type: application/json", "--data-binary", JSON.stringify(body), `${url}/${SVC}/${method}`]);
  const lines = r.stdout.trimEnd().split("\n");
  const status = Number(lines.pop());
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(lines.join("\n") || "{}");
  } catch {
    /* not JSON */
  }
  return { status, json, code: r.code, stderr: r.stderr };
}
const hb = (region: string, ip = "127.0.80.9") => ({ agent: { region, ip, version: "t" } });

describe("agent tokens", () => {
  let server: Proc;
  let rpcUrl = "", webUrl = "";
  let tokenFile = "";
  let target: ReturnType<typeof Bun.serve>;
  const agents: Proc[] = [];

  beforeAll(async () => {
    // A target that needs the bearer token, and one that needs basic auth (u / PASSWORD_SECRET).
    target = Bun.serve({
      hostname: "127.0.0.1", port: 0,
      fetch: (req) => {
        const auth = req.headers.get("authorization");
        const ok = new URL(req.url).pathname === "/bearer" ? auth === `Bearer ${BEARER_SECRET}` : auth === `Basic ${Buffer.from(`u:${PASSWORD_SECRET}`).toString("base64")}`;
        return new Response(ok ? "welcome" : "who are you", { status: ok ? 200 : 401 });
      },
    });
    file("bearer", `${BEARER_SECRET}\n`);
    file("password", `${PASSWORD_SECRET}\n`);
    const probe = file("p.yaml", `prober_configs:
  - prober_type: http
    region: web-bearer
    http: {bearer_token_file: bearer, headers: {X-Api-Key: header-secret-aa11}}
    targets: ["http://127.0.0.1:${target.port}/bearer"]
  - prober_type: http
    region: web-basic
    http: {basic_auth: {username: u, password_file: password}}
    targets: ["http://127.0.0.1:${target.port}/basic"]
`);
    tokenFile = file("tokens", `# ProberMesh agent tokens\n${TOKEN_A}\n${TOKEN_LIM}  lim-*   exact-region  # limited\n`);
    const [rpc, web] = [await freePort(), await freePort()];
    rpcUrl = `http://127.0.0.1:${rpc}`;
    webUrl = `http://127.0.0.1:${web}`;
    server = start([SERVER_BIN, "-server.rpc.token.file", tokenFile, "-server.probe.file", probe, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.aggregation.interval", "1s"]);
    await waitFor("server ready", 10_000, async () => (await fetch(`${webUrl}/-/ready`)).ok);
  });
  afterAll(() => target?.stop(true));

  test("no token or a wrong one: unauthenticated (401), counted, and nothing is created", async () => {
    const missing = await call(rpcUrl, "Heartbeat", hb("intruder"));
    expect([missing.status, missing.json.code]).toEqual([401, "unauthenticated"]);
    const wrong = await call(rpcUrl, "Heartbeat", hb("intruder"), ["-H", "Authorization: Bearer not-a-token-but-long-enough"]);
    expect([wrong.status, wrong.json.code]).toEqual([401, "unauthenticated"]);
    const push = await call(rpcUrl, "PushResults", { agent: { region: "intruder", ip: "127.0.80.9" }, icmp: [{ targetRegion: "x", address: "127.0.0.1" }] });
    expect(push.status).toBe(401);
    // The refusal never echoes the token it was given.
    expect(JSON.stringify(wrong.json)).not.toContain("not-a-token");
    const m = await scrape(`${webUrl}/metrics`);
    expect(Number(samples(m, "prober_server_rpc_auth_failures_total", { reason: "missing" })[0]!.value)).toBe(2);
    expect(Number(samples(m, "prober_server_rpc_auth_failures_total", { reason: "invalid" })[0]!.value)).toBe(1);
    expect(samples(m, "prober_agent_is_alive")).toHaveLength(0);
    const targets = (await (await fetch(`${webUrl}/-/targets`)).json()) as { agents: unknown[] };
    expect(targets.agents).toHaveLength(0);
  });

  test("a region-limited token acts only for its regions (permission_denied otherwise)", async () => {
    const bearer = ["-H", `Authorization: Bearer ${TOKEN_LIM}`];
    expect((await call(rpcUrl, "Heartbeat", hb("lim-a"), bearer)).status).toBe(200);
    expect((await call(rpcUrl, "Heartbeat", hb("exact-region", "127.0.80.8"), bearer)).status).toBe(200);
    const other = await call(rpcUrl, "Heartbeat", hb("elsewhere"), bearer);
    expect([other.status, other.json.code]).toEqual([403, "permission_denied"]);
    const m = await scrape(`${webUrl}/metrics`);
    expect(Number(samples(m, "prober_server_rpc_auth_failures_total", { reason: "region" })[0]!.value)).toBe(1);
  });

  test("agents with a token (file or PROBER_TOKEN) work; secrets reach them but never /-/targets or the logs", async () => {
    const tf = file("agent-token", `${TOKEN_A}\n`);
    const common = ["-server.rpc.addr", rpcUrl.replace("http://", ""), "-agent.probe.interval", "1s", "-agent.sync.interval", "500ms"];
    agents.push(start([AGENT_BIN, "-region", "src", "-agent.ip", "127.0.80.1", "-agent.token.file", tf, ...common]));
    agents.push(start(["env", `PROBER_TOKEN=${TOKEN_A}`, AGENT_BIN, "-region", "src2", "-agent.ip", "127.0.80.2", ...common]));
    // Both probes succeed only when the agent got the bearer token and the password from the server.
    const m = await waitFor("authenticated HTTP probes succeed", 20_000, async () => {
      const m = await scrape(`${webUrl}/metrics`);
      const ok = ["web-bearer", "web-basic"].every((t) => Number(samples(m, "prober_http_probes_total", { source_region: "src", target_region: t })[0]?.value ?? 0) > 0);
      return ok ? m : undefined;
    });
    expect(samples(m, "prober_http_probes_failed_total", { source_region: "src" })).toHaveLength(0);
    expect(samples(m, "prober_agent_is_alive", { region: "src2" })[0]?.value).toBe("1");
    const shown = await (await fetch(`${webUrl}/-/targets`)).text();
    expect(shown).toContain("<secret>");
    for (const secret of [BEARER_SECRET, PASSWORD_SECRET, "header-secret-aa11", TOKEN_A]) {
      expect(shown).not.toContain(secret);
      expect(server.output()).not.toContain(secret);
      for (const a of agents) expect(a.output()).not.toContain(secret);
    }
    expect(await (await fetch(`${webUrl}/`)).text()).not.toContain(BEARER_SECRET);
  }, 40_000);

  test("SIGHUP re-reads the token file: a removed token is refused, a new one accepted, agents say why", async () => {
    writeFileSync(tokenFile, `${TOKEN_NEW}\n`);
    server.proc.kill("SIGHUP");
    const bearer = (t: string) => ["-H", `Authorization: Bearer ${t}`];
    await waitFor("the old token refused", 5000, async () => (await call(rpcUrl, "Heartbeat", hb("src9"), bearer(TOKEN_A))).status === 401);
    expect((await call(rpcUrl, "Heartbeat", hb("src9"), bearer(TOKEN_NEW))).status).toBe(200);
    await waitFor("the agent reports the refusal", 15_000, () => agents[0]!.output().includes("check the token"));
    expect(agents[0]!.proc.exitCode).toBeNull(); // it keeps running (and probing)
    // Its batches stayed queued: once its token is accepted again they are all delivered.
    const before = agents[0]!.output().length;
    writeFileSync(tokenFile, `${TOKEN_NEW}\n${TOKEN_A}\n`);
    server.proc.kill("SIGHUP");
    await waitFor("the queued batches delivered", 15_000, () => /"batches":[1-9]\d*,"msg":"push recovered; queued batches delivered"/.test(agents[0]!.output().slice(before)));
  }, 40_000);
});

const nsAvailable = await netnsAvailable();
describe.skipIf(!nsAvailable)("without tokens, secrets go only to agents on this machine", () => {
  test("a peer in another namespace gets the module without its secret; a loopback peer gets it", async () => {
    const pair = await createNsPair("secret");
    try {
      const probe = file("secret.yaml", `prober_configs:\n  - prober_type: http\n    region: web\n    http: {bearer_token: ${BEARER_SECRET}}\n    targets: ["http://127.0.0.1:9/"]\n`);
      start([SERVER_BIN, "-server.rpc.insecure", "-server.probe.file", probe, "-server.rpc.listen.addr", "0.0.0.0:16200", "-server.http.listen.addr", "127.0.0.1:16201"], pair.inNear);
      const pool = (prefix: string[], host: string) => run([...prefix, "curl", "-sS", "-H", "Content-Type: application/json", "--data-binary", JSON.stringify(hb("asker")), `http://${host}:16200/${SVC}/GetTargetPool`]);
      await waitFor("server ready", 10_000, async () => (await run([...pair.inNear, "curl", "-sf", "http://127.0.0.1:16201/-/ready"])).code === 0);
      const remote = await pool(pair.inFar, pair.nearIp);
      expect(remote.stdout).toContain('"url":"http://127.0.0.1:9/"');
      expect(remote.stdout).not.toContain(BEARER_SECRET);
      expect((await pool(pair.inNear, "127.0.0.1")).stdout).toContain(BEARER_SECRET);
    } finally {
      await pair.remove();
    }
  }, 30_000);
});

describe("secure by default", () => {
  test("a non-loopback RPC listener without tokens does not start: exit 2 and how to make a token", async () => {
    const r = await run([SERVER_BIN, "-server.rpc.listen.addr", `0.0.0.0:${await freePort()}`, "-server.http.listen.addr", `127.0.0.1:${await freePort()}`]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("-server.rpc.token.file");
    expect(lines[0]).toContain("head -c 32 /dev/urandom | base64");
    expect(lines[0]).toContain("-server.rpc.insecure");
  });

  test("with -server.rpc.insecure it starts and warns; with a token file it starts quietly", async () => {
    const web = await freePort();
    const insecure = start([SERVER_BIN, "-server.rpc.insecure", "-server.rpc.listen.addr", `0.0.0.0:${await freePort()}`, "-server.http.listen.addr", `127.0.0.1:${web}`]);
    await waitFor("insecure server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
    expect(insecure.output()).toContain("are not authenticated (-server.rpc.insecure)");
    const web2 = await freePort();
    const tf = file("tokens-2", `${TOKEN_A}\n`);
    const secured = start([SERVER_BIN, "-server.rpc.token.file", tf, "-server.rpc.listen.addr", `0.0.0.0:${await freePort()}`, "-server.http.listen.addr", `127.0.0.1:${web2}`]);
    await waitFor("secured server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web2}/-/ready`)).ok);
    expect(secured.output()).not.toContain("not authenticated");
  });

  test("a short token or an unreadable token file stops the server with the reason", async () => {
    const short = await run([SERVER_BIN, "-server.rpc.token.file", file("short", "abc\n"), "-server.rpc.listen.addr", `127.0.0.1:${await freePort()}`, "-server.http.listen.addr", `127.0.0.1:${await freePort()}`]);
    expect(short.code).toBe(2);
    expect(short.stderr).toContain("short:1: token shorter than 16 characters");
    expect(short.stderr).not.toContain("abc");
  });
});

describe("TLS on the RPC port", () => {
  let server: Proc;
  let rpc = 0, web = 0;
  beforeAll(async () => {
    [rpc, web] = [await freePort(), await freePort()];
    // The server's certificate is a copy, so that the test can replace it and send SIGHUP.
    copyFileSync(certs.serverCert, `${dir}/rpc.pem`);
    copyFileSync(certs.serverKey, `${dir}/rpc.key`);
    server = start([SERVER_BIN, "-server.rpc.tls.cert.file", `${dir}/rpc.pem`, "-server.rpc.tls.key.file", `${dir}/rpc.key`, "-server.rpc.tls.client.ca.file", certs.caFile,
      "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`]);
    await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
  });

  test("HTTP/2 and HTTP/1.1 over TLS with a client certificate; plaintext and strangers are refused", async () => {
    const url = `https://localhost:${rpc}`;
    const mtls = ["--cacert", certs.caFile, "--cert", certs.clientCert, "--key", certs.clientKey];
    for (const v of ["--http1.1", "--http2"]) {
      const r = await call(url, "Heartbeat", hb("tls-curl"), [...mtls, v]);
      expect({ v, status: r.status }).toEqual({ v, status: 200 });
    }
    const plaintext = await call(`http://localhost:${rpc}`, "Heartbeat", hb("plain"));
    expect(plaintext.status).toBe(0); // no HTTP answer at all
    const noCert = await call(url, "Heartbeat", hb("nocert"), ["--cacert", certs.caFile]);
    expect(noCert.status).toBe(0);
    const stranger = await call(url, "Heartbeat", hb("stranger"), ["--cacert", certs.caFile, "--cert", certs.otherClientCert, "--key", certs.otherClientKey]);
    expect(stranger.status).toBe(0);
  });

  test("agents: https:// with the CA and a client certificate register; without the CA they say why", async () => {
    const tlsFlags = ["-agent.rpc.tls.ca.file", certs.caFile, "-agent.rpc.tls.cert.file", certs.clientCert, "-agent.rpc.tls.key.file", certs.clientKey];
    start([AGENT_BIN, "-region", "tls-a", "-agent.ip", "127.0.81.1", "-server.rpc.addr", `https://localhost:${rpc}`, ...tlsFlags, "-agent.sync.interval", "500ms"]);
    const noCa = start([AGENT_BIN, "-region", "tls-b", "-agent.ip", "127.0.81.2", "-server.rpc.addr", `https://localhost:${rpc}`, "-agent.sync.interval", "500ms"]);
    await waitFor("the TLS agent registered", 10_000, async () => samples(await scrape(`http://127.0.0.1:${web}/metrics`), "prober_agent_is_alive", { region: "tls-a" })[0]?.value === "1");
    await waitFor("the agent without the CA reports why", 10_000, () => noCa.output().includes("register failed"));
    expect(samples(await scrape(`http://127.0.0.1:${web}/metrics`), "prober_agent_is_alive", { region: "tls-b" })).toHaveLength(0);
  }, 30_000);

  test("SIGHUP re-reads the certificate", async () => {
    const url = `https://localhost:${rpc}`;
    const other = mkdtempSync(`${tmpdir()}/pm-newcert-`);
    // A new server certificate signed by the other CA replaces the first.
    writeFileSync(`${other}/ext`, "subjectAltName=DNS:localhost\n");
    await run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${dir}/rpc.key.new`, "-out", `${other}/csr`, "-subj", "/CN=localhost"]);
    await run(["openssl", "x509", "-req", "-in", `${other}/csr`, "-CA", certs.otherCaFile, "-CAkey", certs.otherCaFile.replace(/\.pem$/, ".key"), "-CAcreateserial", "-out", `${dir}/rpc.pem.new`, "-days", "2", "-extfile", `${other}/ext`]);
    copyFileSync(`${dir}/rpc.pem.new`, `${dir}/rpc.pem`);
    copyFileSync(`${dir}/rpc.key.new`, `${dir}/rpc.key`);
    server.proc.kill("SIGHUP");
    const mtls = ["--cert", certs.clientCert, "--key", certs.clientKey];
    await waitFor("the new certificate served", 5000, async () => (await call(url, "Heartbeat", hb("tls-new"), ["--cacert", certs.otherCaFile, ...mtls])).status === 200);
    expect((await call(url, "Heartbeat", hb("tls-old"), ["--cacert", certs.caFile, ...mtls])).status).toBe(0);
  });
});

describe("the HTTP side: exporter-toolkit web config", () => {
  let server: Proc;
  let web = 0;
  let config = "";
  beforeAll(async () => {
    const hash = await Bun.password.hash("alice-pass", { algorithm: "bcrypt", cost: 10 });
    config = file("web.yml", `tls_server_config:\n  cert_file: ${certs.serverCert}\n  key_file: ${certs.serverKey}\nbasic_auth_users:\n  alice: "${hash.replace(/^\$2b/, "$2y")}"\nhttp_server_config:\n  headers: {X-Frame-Options: deny}\n`);
    web = await freePort();
    server = start([SERVER_BIN, "-server.web.config.file", config, "-server.rpc.listen.addr", `127.0.0.1:${await freePort()}`, "-server.http.listen.addr", `127.0.0.1:${web}`]);
    await waitFor("server ready", 10_000, async () => (await run(["curl", "-s", "-o", "/dev/null", "--cacert", certs.caFile, `https://localhost:${web}/-/ready`])).code === 0);
  });

  const get = async (path: string, extra: string[] = []) => {
    const r = await run(["curl", "-s", "-D", "-", "-o", "/dev/null", "--cacert", certs.caFile, ...extra, `https://localhost:${web}${path}`]);
    return { status: Number(/^HTTP\/\S+ (\d+)/m.exec(r.stdout)?.[1] ?? 0), headers: r.stdout };
  };

  test("every path needs basic auth over TLS; plaintext gets nothing", async () => {
    for (const path of ["/metrics", "/", "/-/healthy", "/-/targets"]) {
      expect({ path, status: (await get(path)).status }).toEqual({ path, status: 401 });
      expect({ path, status: (await get(path, ["-u", "alice:wrong"])).status }).toEqual({ path, status: 401 });
      const ok = await get(path, ["-u", "alice:alice-pass"]);
      expect({ path, status: ok.status }).toEqual({ path, status: 200 });
      expect(ok.headers.toLowerCase()).toContain("x-frame-options: deny");
    }
    expect((await run(["curl", "-s", "-m", "3", `http://localhost:${web}/metrics`])).stdout).not.toContain("prober_");
  });

  test("SIGHUP reloads basic_auth_users", async () => {
    const hash = await Bun.password.hash("new-pass", { algorithm: "bcrypt", cost: 10 });
    writeFileSync(config, `tls_server_config:\n  cert_file: ${certs.serverCert}\n  key_file: ${certs.serverKey}\nbasic_auth_users:\n  alice: "${hash}"\n`);
    server.proc.kill("SIGHUP");
    await waitFor("the new password accepted", 5000, async () => (await get("/metrics", ["-u", "alice:new-pass"])).status === 200);
    expect((await get("/metrics", ["-u", "alice:alice-pass"])).status).toBe(401);
  });

  test("keys the server cannot enforce are refused at start, naming the key", async () => {
    const bad = file("bad-web.yml", "tls_server_config:\n  cert_file: x\n  key_file: y\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n");
    const r = await run([SERVER_BIN, "-server.web.config.file", bad, "-server.rpc.listen.addr", `127.0.0.1:${await freePort()}`, "-server.http.listen.addr", `127.0.0.1:${await freePort()}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("tls_server_config.cipher_suites: not supported by ProberMesh");
  });
});
