/**
 * README "Running it for real" works as written: its ```sh blocks are read from README.md (not
 * copied here) and run for real on two "machines", network namespaces joined by a veth link
 * (tests/helpers/netns.ts): the server machine at 10.231.N.1, an agent machine at 10.231.N.2.
 * No other address is used: the probe file lists only the server machine, and every agent gets
 * -region (no cloud metadata requests).
 *
 * What the test changes in the commands, and nothing else:
 * - the placeholders the README defines: SERVER_IP (the server machine's address) and REGION;
 * - it appends short intervals to the long-running commands (./server: -server.aggregation.interval
 *   1s; ./agent: -agent.probe.interval 1s -agent.sync.interval 500ms), after the README's own flags;
 * - `./server` and `./agent` are symlinks to dist/ in each machine's directory, where the commands
 *   run (`cd DIR && ...` inside the namespace);
 * - the user's own steps the README states in words: copying `token` and `server.crt` to the agent
 *   machine, and writing their prober_mesh.yaml (here: one ICMP target, the server machine).
 * A block's `# on the server machine` / `# on each agent machine` / `# from any machine` comment
 * says where its commands run; a backslash joins lines; trailing `# ...` comments are dropped.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createNsPair, netnsAvailable, type NsPair } from "./helpers/netns.ts";
import { AGENT_BIN, ROOT, SERVER_BIN, killAll, parseExposition, run, samples, skipReason, start, waitFor, type Proc } from "./helpers/procs.ts";

/** Where a README command runs. */
type Where = "server" | "agent" | "any";
interface Cmd {
  where: Where;
  text: string;
}

/** The ```sh commands of README's "Running it for real", by its ### subsections (title -> commands). */
function readmeRecipe(markdown: string): Map<string, Cmd[]> {
  const start = markdown.indexOf("\n## Running it for real\n");
  if (start < 0) throw new Error('README.md has no "## Running it for real" section');
  const end = markdown.indexOf("\n## ", start + 1);
  const section = markdown.slice(start, end < 0 ? undefined : end);
  const out = new Map<string, Cmd[]>();
  for (const sub of section.split(/\n### /).slice(1)) {
    const title = sub.slice(0, sub.indexOf("\n")).trim();
    const cmds: Cmd[] = [];
    for (const block of sub.matchAll(/```sh\n([\s\S]*?)```/g)) {
      let where: Where | undefined;
      const logical = block[1]!.replace(/\\\n\s*/g, " ").split("\n").map((l) => l.trim()).filter(Boolean);
      for (const line of logical) {
        if (line.startsWith("#")) {
          if (/^# on the server machine/.test(line)) where = "server";
          else if (/^# on each agent machine/.test(line)) where = "agent";
          else if (/^# from any machine/.test(line)) where = "any";
          continue;
        }
        if (!where) throw new Error(`README "${title}": a command before any "# on the ... machine" line: ${line}`);
        cmds.push({ where, text: line.replace(/\s+#\s.*$/, "") });
      }
    }
    out.set(title, cmds);
  }
  return out;
}

const available = await netnsAvailable();
if (!available) skipReason("readme_recipe.test.ts needs root and iproute2: the README's two machines are network namespaces");

const recipe = readmeRecipe(readFileSync(`${ROOT}README.md`, "utf8"));
const section = (word: string) => {
  const title = [...recipe.keys()].find((t) => t.includes(word));
  if (!title) throw new Error(`README "Running it for real" has no ### subsection with "${word}" (has: ${[...recipe.keys()].join(", ")})`);
  return recipe.get(title)!;
};
const isServer = (c: Cmd) => c.text.startsWith("./server ");
const isAgent = (c: Cmd) => c.text.startsWith("./agent ");
const FAST_SERVER = ["-server.aggregation.interval", "1s"];
const FAST_AGENT = ["-agent.probe.interval", "1s", "-agent.sync.interval", "500ms"];
const plain = section("Server and agents");
const tls = section("TLS");

test("the README's commands are what a user types: placeholders SERVER_IP and REGION, binaries ./server and ./agent", () => {
  for (const cmds of [plain, tls]) {
    expect(cmds.filter(isServer).map((c) => c.where)).toEqual(["server"]);
    expect(cmds.filter(isAgent).map((c) => c.where)).toEqual(["agent"]);
    const server = cmds.find(isServer)!.text, agent = cmds.find(isAgent)!.text;
    // Reachable from other machines, with tokens, metrics for Prometheus.
    expect(server).toContain("-server.rpc.listen.addr 0.0.0.0:6000");
    expect(server).toContain("-server.rpc.token.file tokens.txt");
    expect(server).toContain("-server.http.listen.addr 0.0.0.0:6001");
    expect(agent).toMatch(/-server\.rpc\.addr (https:\/\/)?SERVER_IP:6000/);
    expect(agent).toContain("-region REGION");
    expect(agent).toContain("-agent.token.file token");
  }
  expect(tls.find(isAgent)!.text).toContain("https://SERVER_IP:6000");
  expect(plain.filter((c) => c.where === "any").map((c) => c.text)).toEqual([expect.stringContaining("http://SERVER_IP:6001/metrics")]);
});

describe.skipIf(!available)("README: running it for real, on two machines", () => {
  let pair: NsPair;
  let serverDir = "", agentDir = "";
  /** Commands with the placeholders filled in. */
  const fill = (text: string, region = "readme-east") => text.replaceAll("SERVER_IP", pair.nearIp).replaceAll("REGION", region);
  const ns = (where: Where) => (where === "server" ? pair.near : pair.far);
  const dirOf = (where: Where) => (where === "server" ? serverDir : agentDir);
  /** Runs a one-shot command in its machine's directory. */
  const sh = async (c: Cmd) => {
    const r = await run(["ip", "netns", "exec", ns(c.where), "sh", "-c", `cd '${dirOf(c.where)}' && ${fill(c.text)}`]);
    if (r.code !== 0) throw new Error(`README command failed (exit ${r.code}) on the ${c.where} machine: ${c.text}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  /** Starts a long-running command (./server, ./agent) in its machine's directory; `exec`, so its PID is the binary's. */
  const launch = (where: Where, text: string, extra: string[], region?: string) =>
    start(["sh", "-c", `cd '${dirOf(where)}' && exec ${fill(text, region)} ${extra.join(" ")}`], ["ip", "netns", "exec", ns(where)]);
  /** The server's /metrics as Prometheus on another machine would scrape it (curl from the agent machine). */
  const metrics = async () => parseExposition((await run(["ip", "netns", "exec", pair.far, "curl", "-sf", `http://${pair.nearIp}:6001/metrics`])).stdout);
  const alive = async (region: string) => samples(await metrics(), "prober_agent_is_alive", { region }).some((s) => s.value === "1");
  const serverReady = () => waitFor("the server ready, seen from the agent machine", 60_000, async () =>
    (await run(["ip", "netns", "exec", pair.far, "curl", "-sf", `http://${pair.nearIp}:6001/-/ready`])).code === 0);
  /** Waits for a process to exit by itself; @returns its exit code and output. */
  const exitOf = async (p: Proc, timeoutMs: number) => {
    const code = await Promise.race([p.exited, Bun.sleep(timeoutMs).then(() => undefined)]);
    if (code === undefined) await p.kill();
    return { code, output: p.output() };
  };
  const running: Proc[] = [];
  const stopAll = async () => {
    await Promise.all(running.splice(0).map((p) => p.kill()));
  };

  beforeAll(async () => {
    pair = await createNsPair("readme");
    serverDir = mkdtempSync(`${tmpdir()}/pm-readme-server-`);
    agentDir = mkdtempSync(`${tmpdir()}/pm-readme-agent-`);
    for (const dir of [serverDir, agentDir]) {
      symlinkSync(SERVER_BIN, `${dir}/server`);
      symlinkSync(AGENT_BIN, `${dir}/agent`);
    }
    // The user's own target list (docs/configuration.md): the server machine, pinged by agents of
    // every other region. Inside the namespaces only.
    writeFileSync(`${serverDir}/prober_mesh.yaml`, `prober_configs:\n  - prober_type: icmp\n    region: server-machine\n    icmp: {packet_count: 5, interval: 10ms, timeout: 1s}\n    targets: [${pair.nearIp}]\n`);
  }, 60_000);

  afterAll(async () => {
    await killAll();
    await pair?.remove();
    for (const dir of [serverDir, agentDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("server and agent: the agent registers, its results arrive, /metrics shows it alive", async () => {
    for (const c of plain.filter((c) => c.where === "server" && !isServer(c))) await sh(c); // the token and the token file
    expect(readFileSync(`${serverDir}/token`, "utf8").trim().length).toBeGreaterThanOrEqual(16);
    running.push(launch("server", plain.find(isServer)!.text, FAST_SERVER));
    await serverReady();
    copyFileSync(`${serverDir}/token`, `${agentDir}/token`); // "Copy token to each agent machine"
    const agent = launch("agent", plain.find(isAgent)!.text, FAST_AGENT, "readme-east");
    running.push(agent);
    await waitFor("the agent alive on the server's /metrics", 60_000, () => alive("readme-east"));
    // The server counts the heartbeat before the agent has read the answer and logged it.
    await waitFor("the agent logs that it registered", 30_000, () => agent.output().includes("registered"));
    // The README's check, run on the agent machine (another machine than the server's).
    const check = plain.find((c) => c.where === "any")!;
    const shown = await sh({ ...check, where: "agent" });
    expect(shown).toMatch(/^prober_agent_is_alive\{[^}]*region="readme-east"[^}]*\} 1$/m);
    // Its ICMP results reach the server: the agent machine pings the server machine (probe file).
    const m = await waitFor("ICMP results from the agent machine", 60_000, async () => {
      const m = await metrics();
      const recv = samples(m, "prober_icmp_packets_received_total", { source_region: "readme-east", target_region: "server-machine" });
      return Number(recv[0]?.value ?? 0) > 0 ? m : undefined;
    });
    expect(Number(samples(m, "prober_server_receive_points_total", { prober_type: "icmp" })[0]?.value)).toBeGreaterThan(0);
  }, 180_000);

  test("an agent without the token is refused, and says so", async () => {
    const withToken = plain.find(isAgent)!.text;
    const without = withToken.replace(/\s+-agent\.token\.file\s+token\b/, "");
    expect(without).not.toBe(withToken);
    const before = samples(await metrics(), "prober_server_rpc_auth_failures_total").reduce((n, s) => n + Number(s.value), 0);
    const stranger = launch("agent", without, FAST_AGENT, "readme-stranger");
    running.push(stranger);
    await waitFor("the agent's refusal in its log", 60_000, () => stranger.output().includes("register refused: check the token"));
    const m = await waitFor("the refusal counted by the server", 30_000, async () => {
      const m = await metrics();
      return samples(m, "prober_server_rpc_auth_failures_total").reduce((n, s) => n + Number(s.value), 0) > before ? m : undefined;
    });
    expect(samples(m, "prober_agent_is_alive", { region: "readme-stranger" })).toEqual([]);
  }, 120_000);

  test("with TLS: the certificate made as the README says, the agent registers over https and its results arrive", async () => {
    await stopAll();
    for (const c of tls.filter((c) => c.where === "server" && !isServer(c))) await sh(c); // openssl
    running.push(launch("server", tls.find(isServer)!.text, FAST_SERVER));
    await serverReady();
    copyFileSync(`${serverDir}/server.crt`, `${agentDir}/server.crt`); // "Copy server.crt to each agent machine"
    const agent = launch("agent", tls.find(isAgent)!.text, FAST_AGENT, "readme-tls");
    running.push(agent);
    await waitFor("the TLS agent alive on the server's /metrics", 60_000, () => alive("readme-tls"));
    // The "registered" line names the server; its output may be read a moment after /metrics says alive.
    await waitFor("the agent's log names the https server", 10_000, () => agent.output().includes(`"server":"https://${pair.nearIp}:6000"`));
    await waitFor("ICMP results from the TLS agent", 60_000, async () =>
      Number(samples(await metrics(), "prober_icmp_packets_received_total", { source_region: "readme-tls", target_region: "server-machine" })[0]?.value ?? 0) > 0);
    // Plaintext to the TLS port gets nowhere.
    const plaintext = launch("agent", plain.find(isAgent)!.text, FAST_AGENT, "readme-plaintext");
    running.push(plaintext);
    await waitFor("the plaintext agent's failure in its log", 60_000, () => plaintext.output().includes("register failed; retrying"));
    expect(await alive("readme-plaintext")).toBe(false);
  }, 180_000);

  test("what the README warns about: no token file, exit 2 with how to make one; the default localhost listener, agents cannot register", async () => {
    await stopAll();
    const server = plain.find(isServer)!.text;
    // Without -server.rpc.token.file: refuses to start.
    const noTokens = server.replace(/\s+-server\.rpc\.token\.file\s+tokens\.txt\b/, "");
    expect(noTokens).not.toBe(server);
    const refused = await exitOf(launch("server", noTokens, FAST_SERVER), 30_000);
    expect(refused.code).toBe(2);
    expect(refused.output).toContain("refusing to serve agents on 0.0.0.0:6000 without authentication");
    expect(refused.output).toContain("head -c 32 /dev/urandom | base64 > token");
    // The old recipe: no listen addresses (localhost:6000 and localhost:6001). An agent on
    // another machine cannot register, and keeps saying so.
    const old = server.replace(/\s+-server\.rpc\.(listen\.addr|token\.file)\s+\S+/g, "").replace(/\s+-server\.http\.listen\.addr\s+\S+/, "");
    expect(old).toBe("./server -server.probe.file prober_mesh.yaml");
    running.push(launch("server", old, FAST_SERVER));
    await waitFor("the old-recipe server ready on localhost", 60_000, async () =>
      (await run(["ip", "netns", "exec", pair.near, "curl", "-sf", "http://localhost:6001/-/ready"])).code === 0);
    const agent = launch("agent", plain.find(isAgent)!.text, FAST_AGENT, "readme-old");
    running.push(agent);
    await waitFor("the agent's register failures", 60_000, () => agent.output().split("register failed; retrying").length > 2);
    expect(agent.output()).not.toContain('"msg":"registered"');
    const m = parseExposition((await run(["ip", "netns", "exec", pair.near, "curl", "-sf", "http://localhost:6001/metrics"])).stdout);
    expect(samples(m, "prober_agent_is_alive", { region: "readme-old" })).toEqual([]);
  }, 180_000);
});
