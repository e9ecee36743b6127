/**
 * The mesh key (lib/server/mesh_key.ts, docs/security.md "Responders") through the compiled
 * server (`bun run scripts/build.ts`) and a Connect client (@connectrpc/connect-node, binary
 * protobuf): Heartbeat hands a 32-byte key, the same across calls; two servers given the same
 * -server.mesh.key.file, or sharing a Redis registry, hand out the same key; the token gate keeps
 * it from unauthenticated callers; and it appears nowhere in /metrics, the logs or the JSON API.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AgentSchema, ProberMeshService } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { SERVER_BIN, freePort, killAll, run, skipReason, start, waitFor, type Proc } from "./helpers/procs.ts";

afterAll(killAll);

const dir = mkdtempSync(`${tmpdir()}/pm-meshkey-`);

/** Starts a server and waits until ready; `web` for /metrics and the API. */
async function server(extra: string[] = []): Promise<{ rpc: number; web: number; proc: Proc }> {
  const [rpc, web] = [await freePort(), await freePort()];
  const proc = start([SERVER_BIN, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.aggregation.interval", "1s", "-log.level", "debug", ...extra]);
  await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`).catch(() => undefined))?.ok);
  return { rpc, web, proc };
}

/** A Connect client of the server's RPC port (binary protobuf over HTTP/1.1), with an optional bearer token. */
const client = (rpc: number, token?: string) =>
  createClient(ProberMeshService, createConnectTransport({
    baseUrl: `http://127.0.0.1:${rpc}`, httpVersion: "1.1", useBinaryFormat: true,
    interceptors: token ? [(next) => (req) => (req.header.set("Authorization", `Bearer ${token}`), next(req))] : [],
  }));

const heartbeat = async (rpc: number, ip = "127.0.71.1", token?: string) =>
  (await client(rpc, token).heartbeat({ agent: create(AgentSchema, { region: "a", ip, version: "0.6.0", udpPort: 7001 }) })).meshKey;

/** Every encoding of the key a leak could take. */
const encodings = (k: Uint8Array) => [Buffer.from(k).toString("hex"), Buffer.from(k).toString("base64"), Buffer.from(k).toString("base64url")];

/** Asserts the key is in none of /metrics, the JSON API and the process output. */
async function expectNowhere(s: { web: number; proc: Proc }, key: Uint8Array) {
  const texts = [s.proc.output()];
  for (const path of ["/metrics", "/api/v1/agents", "/api/v1/mesh", "/api/v1/paths", "/api/v1/targets", "/-/targets"]) texts.push(await (await fetch(`http://127.0.0.1:${s.web}${path}`)).text());
  for (const t of texts) for (const e of encodings(key)) expect(t.includes(e)).toBe(false);
}

describe("mesh key in heartbeats", () => {
  test("32 bytes, the same across calls, and nowhere in /metrics, logs or the API", async () => {
    const s = await server();
    const k1 = await heartbeat(s.rpc);
    const k2 = await heartbeat(s.rpc, "127.0.71.2");
    expect(k1.length).toBe(32);
    expect(Buffer.from(k2).equals(Buffer.from(k1))).toBe(true);
    expect(k1.some((b) => b !== 0)).toBe(true);
    await expectNowhere(s, k1);
  });

  test("-server.mesh.key.file: SHA-256 of the file, the same at two servers; an empty file refuses to start", async () => {
    const file = `${dir}/mesh.key`;
    writeFileSync(file, "a long random secret shared by every server of the mesh\n");
    const [a, b] = [await server(["-server.mesh.key.file", file]), await server(["-server.mesh.key.file", file])];
    const [ka, kb] = [await heartbeat(a.rpc), await heartbeat(b.rpc)];
    expect(Buffer.from(ka).equals(Buffer.from(kb))).toBe(true);
    expect(Buffer.from(ka).equals(createHash("sha256").update("a long random secret shared by every server of the mesh\n").digest())).toBe(true);
    await expectNowhere(a, ka);
    writeFileSync(`${dir}/empty.key`, "");
    const r = await run([SERVER_BIN, "-server.rpc.listen.addr", `127.0.0.1:${await freePort()}`, "-server.http.listen.addr", `127.0.0.1:${await freePort()}`, "-server.mesh.key.file", `${dir}/empty.key`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("-server.mesh.key.file");
    expect(r.stderr).toContain("empty");
  });

  test("the token gate: a caller without a token gets no key", async () => {
    const token = "meshkey-token-0123456789abcdef0123";
    writeFileSync(`${dir}/tokens`, `${token}\n`);
    const s = await server(["-server.rpc.token.file", `${dir}/tokens`]);
    const err = await heartbeat(s.rpc).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((await heartbeat(s.rpc, "127.0.71.1", token)).length).toBe(32);
  });
});

const redisBin = Bun.which("redis-server");
if (!redisBin) skipReason("mesh_key.test.ts: the shared-key test needs redis-server (apt-get install redis-server)");

describe.skipIf(!redisBin)("two servers sharing a Redis registry", () => {
  test("hand out the same key (SET NX, read back), which is in Redis but not in their output", async () => {
    const redisPort = await freePort();
    start([redisBin!, "--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    await waitFor("redis ready", 10_000, async () => (await run(["redis-cli", "-p", String(redisPort), "ping"])).stdout.trim() === "PONG");
    const shared = ["-server.registry.url", `redis://127.0.0.1:${redisPort}/0`];
    const [a, b] = [await server(shared), await server(shared)];
    const [ka, kb] = [await heartbeat(a.rpc), await heartbeat(b.rpc, "127.0.71.3")];
    expect(ka.length).toBe(32);
    expect(Buffer.from(ka).equals(Buffer.from(kb))).toBe(true);
    expect((await run(["redis-cli", "-p", String(redisPort), "GET", "probermesh:mesh_key"])).stdout.trim()).toBe(Buffer.from(ka).toString("hex"));
    await expectNowhere(a, ka);
    await expectNowhere(b, kb);
  }, 30_000);
});
