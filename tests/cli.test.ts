/**
 * Bad input at the edges, through the compiled binaries: flags, probe files, /-/reload.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { parseFlags, type FlagSpec } from "../lib/cli/flags.ts";
import { VERSION } from "../lib/version.ts";
import { AGENT_BIN, SERVER_BIN, freePort, killAll, run, start, waitFor } from "./helpers/procs.ts";

const dir = mkdtempSync(`${tmpdir()}/pm-cli-`);
const file = (name: string, text: string) => {
  writeFileSync(`${dir}/${name}`, text);
  return `${dir}/${name}`;
};
afterAll(killAll);

describe("flags (Go style)", () => {
  const specs: FlagSpec[] = [
    { name: "a.b", kind: "string", default: "x", help: "" },
    { name: "d", kind: "duration", default: "15s", help: "" },
    { name: "self", kind: "bool", default: "false", help: "" },
    { name: "agent.region", aliases: ["region"], kind: "string", default: "", help: "" },
  ];
  test("single and double dash, = and space, bool forms, aliases, defaults", () => {
    const v = (argv: string[]) => (parseFlags(specs, argv) as { values: Record<string, unknown> }).values;
    expect(v([])).toEqual({ "a.b": "x", d: 15000, self: false, "agent.region": "" });
    expect(v(["-a.b", "y", "--d=1m30s", "-self", "-region", "r1"])).toEqual({ "a.b": "y", d: 90000, self: true, "agent.region": "r1" });
    expect(v(["--a.b=z", "-d", "250ms", "-self=false", "--agent.region=r2"])).toEqual({ "a.b": "z", d: 250, self: false, "agent.region": "r2" });
    expect(parseFlags(specs, ["-h"]).kind).toBe("help");
    expect(parseFlags(specs, ["-v"]).kind).toBe("version");
  });
  test("errors name the flag", () => {
    expect(() => parseFlags(specs, ["-nope"])).toThrow("-nope");
    expect(() => parseFlags(specs, ["-d", "5x"])).toThrow("-d");
    expect(() => parseFlags(specs, ["-d"])).toThrow("flag needs an argument: -d");
    expect(() => parseFlags(specs, ["-self=maybe"])).toThrow("-self");
    expect(() => parseFlags(specs, ["stray"])).toThrow("stray");
  });
});

describe("binaries reject bad input with exit 2 and a one-line reason", () => {
  const cases: [string, string[], RegExp][] = [
    ["unknown server flag", [SERVER_BIN, "-server.nope", "1"], /flag provided but not defined: -server\.nope/],
    ["bad duration", [SERVER_BIN, "-server.aggregation.interval", "5parsecs"], /-server\.aggregation\.interval/],
    ["bad discovery", [SERVER_BIN, "-server.icmp.discovery", "magic"], /-server\.icmp\.discovery.*static, dynamic/],
    ["static without a file", [SERVER_BIN, "-server.icmp.discovery", "static"], /-server\.probe\.file is required/],
    ["unknown agent flag", [AGENT_BIN, "-agent.nope"], /flag provided but not defined: -agent\.nope/],
    ["bad agent interval", [AGENT_BIN, "-region", "r", "-agent.probe.interval", "1y"], /-agent\.probe\.interval/],
    ["bad agent ip", [AGENT_BIN, "-region", "r", "-agent.ip", "300.1.1.1"], /-agent\.ip/],
    ["trace hops over the TTL range", [AGENT_BIN, "-region", "r", "-agent.trace.max.hops", "65"], /-agent\.trace\.max\.hops: must be at most 64/],
    ["fractional re-probe budget", [AGENT_BIN, "-region", "r", "-agent.probe.error.budget", "1.5"], /-agent\.probe\.error\.budget: must be a whole number/],
    ["negative re-probe budget", [AGENT_BIN, "-region", "r", "-agent.probe.error.budget", "-1"], /-agent\.probe\.error\.budget: must be at least 0/],
  ];
  for (const [name, cmd, re] of cases) {
    test(name, async () => {
      const r = await run(cmd);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(re);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    });
  }
  test("-h and -v exit 0", async () => {
    const h = await run([SERVER_BIN, "-h"]);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain("-server.rpc.listen.addr");
    expect(h.stdout).toContain('(default "localhost:6000")');
    // The binaries carry the commit they were built from and the build date.
    const commit = (await run(["git", "rev-parse", "--short", "HEAD"])).stdout.trim();
    for (const [bin, role] of [[AGENT_BIN, "agent"], [SERVER_BIN, "server"]] as const) {
      const v = await run([bin, "-v"]);
      expect(v.code).toBe(0);
      expect(v.stdout.trim()).toMatch(new RegExp(`^${role} ${VERSION.replace(/\./g, "\\.")} \\(commit \\w+, built \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z\\)$`));
      if (commit) expect(v.stdout).toContain(`commit ${commit}`);
    }
  });

  test("-log.format: text for people, JSON for machines (auto: JSON when stderr is not a terminal)", async () => {
    const lines = async (format?: string) => {
      const web = await freePort();
      const p = start([SERVER_BIN, ...(format ? ["-log.format", format] : []), "-server.rpc.listen.addr", `127.0.0.1:${await freePort()}`, "-server.http.listen.addr", `127.0.0.1:${web}`]);
      await waitFor("server ready", 10_000, async () => (await fetch(`http://127.0.0.1:${web}/-/ready`)).ok);
      await p.kill("SIGTERM");
      return p.output().trim().split("\n");
    };
    const text = await lines("text");
    expect(text.some((l) => /INFO.*server started/.test(l))).toBe(true);
    expect(text.every((l) => !l.startsWith("{"))).toBe(true);
    for (const format of [undefined, "json"]) {
      const json = await lines(format);
      const started = json.map((l) => JSON.parse(l) as { msg: string; level: number }).find((l) => l.msg === "server started");
      expect(started?.level).toBe(30);
    }
  });

  const files: [string, string, RegExp][] = [
    ["malformed YAML", "prober_configs:\n  - prober_type: icmp\n    region: a: b\n    targets: [127.0.0.1]\n", /bad\.yaml:3: YAML syntax error/],
    ["unknown key", "prober_configs:\n  - prober_type: icmp\n    region: a\n    tragets: [127.0.0.1]\n", /bad\.yaml:4: unknown key "tragets"/],
    ["wrong type", "prober_configs:\n  - prober_type: icmp\n    region: a\n    icmp: {packet_count: lots}\n    targets: [127.0.0.1]\n", /bad\.yaml:4: .*packet_count/],
    ["bad address", "prober_configs:\n  - prober_type: icmp\n    region: a\n    targets:\n      - 127.0.0.1\n      - 999.1.1\n", /bad\.yaml:6: .*"999\.1\.1" is not a valid IP address or host name/],
    ["duplicate icmp region", "prober_configs:\n  - prober_type: icmp\n    region: a\n    targets: [127.0.0.1]\n  - prober_type: icmp\n    region: a\n    targets: [127.0.0.2]\n", /bad\.yaml:5: duplicate block for region "a" and prober_type icmp/],
    ["a target twice in one region and kind", "prober_configs:\n  - prober_type: http\n    region: a\n    targets: [127.0.0.1]\n  - prober_type: http\n    region: a\n    http: {method: HEAD}\n    targets: [127.0.0.2, 127.0.0.1]\n", /bad\.yaml:5: target "http:\/\/127\.0\.0\.1" of region "a" is listed twice for prober_type http/],
  ];
  for (const [name, text, re] of files) {
    test(`probe file: ${name}`, async () => {
      const r = await run([SERVER_BIN, "-server.probe.file", file("bad.yaml", text), "-server.rpc.listen.addr", "127.0.0.1:0", "-server.http.listen.addr", "127.0.0.1:0"]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(re);
    });
  }
});

test("/-/reload (with -server.web.enable-lifecycle) answers 400 for a bad file and keeps the old pool; a good file replaces it", async () => {
  const path = file("reload.yaml", "prober_configs:\n  - prober_type: icmp\n    region: far\n    targets: [127.0.30.1]\n");
  const web = await freePort();
  start([SERVER_BIN, "-server.probe.file", path, "-server.icmp.discovery", "static", "-server.rpc.listen.addr", `127.0.0.1:${await freePort()}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.web.enable-lifecycle"]);
  const url = `http://127.0.0.1:${web}`;
  await waitFor("server ready", 10_000, async () => (await fetch(`${url}/-/ready`)).ok);
  const fileTargets = async () => ((await (await fetch(`${url}/-/targets`)).json()) as { file: { targets: string[] }[] }).file.flatMap((b) => b.targets);
  expect(await fileTargets()).toEqual(["127.0.30.1"]);
  writeFileSync(path, "prober_configs:\n  - prober_type: icmp\n    region: far\n    bogus: true\n    targets: [127.0.30.2]\n");
  const bad = await fetch(`${url}/-/reload`, { method: "POST" });
  expect(bad.status).toBe(400);
  expect(await bad.text()).toContain('reload.yaml:4: unknown key "bogus"');
  expect(await fileTargets()).toEqual(["127.0.30.1"]);
  writeFileSync(path, "prober_configs:\n  - prober_type: icmp\n    region: far\n    targets: [127.0.30.3]\n");
  expect((await fetch(`${url}/-/reload`, { method: "POST" })).status).toBe(200);
  expect(await fileTargets()).toEqual(["127.0.30.3"]);
});

test("without -server.web.enable-lifecycle, POST /-/reload is refused (403) and SIGHUP reloads", async () => {
  const path = file("hup.yaml", "prober_configs:\n  - prober_type: icmp\n    region: far\n    targets: [127.0.31.1]\n");
  const web = await freePort();
  const server = start([SERVER_BIN, "-server.probe.file", path, "-server.icmp.discovery", "static", "-server.rpc.listen.addr", `127.0.0.1:${await freePort()}`, "-server.http.listen.addr", `127.0.0.1:${web}`]);
  const url = `http://127.0.0.1:${web}`;
  await waitFor("server ready", 10_000, async () => (await fetch(`${url}/-/ready`)).ok);
  const fileTargets = async () => ((await (await fetch(`${url}/-/targets`)).json()) as { file: { targets: string[] }[] }).file.flatMap((b) => b.targets);
  writeFileSync(path, "prober_configs:\n  - prober_type: icmp\n    region: far\n    targets: [127.0.31.2]\n");
  const refused = await fetch(`${url}/-/reload`, { method: "POST" });
  expect(refused.status).toBe(403);
  expect(await refused.text()).toContain("-server.web.enable-lifecycle");
  expect(await fileTargets()).toEqual(["127.0.31.1"]);
  server.proc.kill("SIGHUP");
  await waitFor("SIGHUP reloaded the file", 5000, async () => (await fileTargets())[0] === "127.0.31.2");
});
