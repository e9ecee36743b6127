/**
 * deploy/ and the Dockerfile: every flag they pass exists (checked against the flag lists), the
 * agent keeps only CAP_NET_RAW everywhere, secrets come from secret stores, Prometheus finds the
 * server, and the image is built in two stages from npm alone. (No container runtime or systemd
 * runs in CI: these are checks of the files, the binaries' behaviour is tested elsewhere.)
 */
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { parseAllDocuments } from "yaml";
import { AGENT_FLAGS } from "../lib/agent/flags.ts";
import { SERVER_FLAGS } from "../lib/server/flags.ts";
import { AGENT_BIN, ROOT, SERVER_BIN, run, skipReason } from "./helpers/procs.ts";

const read = (p: string) => readFileSync(`${ROOT}${p}`, "utf8");
const yamlDocs = (p: string) => parseAllDocuments(read(p)).map((d) => d.toJS()) as Record<string, any>[];
const names = (flags: typeof SERVER_FLAGS) => new Set(flags.flatMap((f) => [f.name, ...(f.aliases ?? [])]));
/** Flags (-name) in a list of words. */
const flagsIn = (words: string[]) => words.filter((w) => /^-[a-z][\w.-]*$/.test(w)).map((w) => w.slice(1));

test("every flag the deployment files pass is a flag of that binary", () => {
  const server = names(SERVER_FLAGS), agent = names(AGENT_FLAGS);
  const ds = yamlDocs("deploy/kubernetes/agent-daemonset.yaml").find((d) => d.kind === "DaemonSet")!;
  const dep = yamlDocs("deploy/kubernetes/server.yaml").find((d) => d.kind === "Deployment")!;
  const envArgs = (p: string) => read(p).split("\n").find((l) => l.includes("_ARGS="))!.split("=").slice(1).join("=").split(/\s+/);
  const uses: [string, Set<string>, string[]][] = [
    ["agent DaemonSet", agent, flagsIn(ds.spec.template.spec.containers[0].args)],
    ["server Deployment", server, flagsIn(dep.spec.template.spec.containers[0].args)],
    ["agent.env.example", agent, flagsIn(envArgs("deploy/systemd/agent.env.example"))],
    ["server.env.example", server, flagsIn(envArgs("deploy/systemd/server.env.example"))],
  ];
  for (const [where, known, used] of uses) {
    expect(used.length).toBeGreaterThan(0);
    expect({ where, unknown: used.filter((f) => !known.has(f)) }).toEqual({ where, unknown: [] });
  }
});

test("Kubernetes: the agent has hostNetwork, NET_RAW only, its IP from the downward API and its token from a Secret; Prometheus finds the server", () => {
  const ds = yamlDocs("deploy/kubernetes/agent-daemonset.yaml").find((d) => d.kind === "DaemonSet")!;
  const pod = ds.spec.template.spec;
  const c = pod.containers[0];
  expect(pod.hostNetwork).toBe(true);
  expect(c.securityContext.capabilities).toEqual({ drop: ["ALL"], add: ["NET_RAW"] });
  expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
  const env = Object.fromEntries(c.env.map((e: { name: string; valueFrom: unknown }) => [e.name, e.valueFrom]));
  expect(env.HOST_IP).toEqual({ fieldRef: { fieldPath: "status.hostIP" } });
  expect(env.PROBER_TOKEN).toEqual({ secretKeyRef: { name: "probermesh-agent", key: "token" } });
  expect(c.args.join(" ")).toContain("-agent.ip $(HOST_IP)");
  const dep = yamlDocs("deploy/kubernetes/server.yaml").find((d) => d.kind === "Deployment")!;
  const ann = dep.spec.template.metadata.annotations;
  const sc = dep.spec.template.spec.containers[0];
  const httpPort = sc.ports.find((p: { name: string }) => p.name === "http").containerPort;
  expect([ann["prometheus.io/scrape"], ann["prometheus.io/port"], ann["prometheus.io/path"]]).toEqual(["true", String(httpPort), "/metrics"]);
  expect(sc.args[sc.args.indexOf("-server.http.listen.addr") + 1]).toBe(`:${httpPort}`);
  // A non-loopback RPC listener must have tokens (the server refuses to start otherwise).
  expect(sc.args).toContain("-server.rpc.token.file");
  const svc = yamlDocs("deploy/kubernetes/server.yaml").find((d) => d.kind === "Service")!;
  expect(svc.spec.ports.map((p: { port: number }) => p.port).sort()).toEqual([6000, 6001]);
});

test("systemd: the agent runs unprivileged with CAP_NET_RAW only and hardening; the server reloads on SIGHUP", () => {
  const unit = (p: string) => new Map(read(p).split("\n").filter((l) => /^\w+=/.test(l)).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  const agent = unit("deploy/systemd/probermesh-agent.service");
  for (const [k, v] of Object.entries({ DynamicUser: "yes", AmbientCapabilities: "CAP_NET_RAW", CapabilityBoundingSet: "CAP_NET_RAW", NoNewPrivileges: "yes", ProtectSystem: "strict", ProtectHome: "yes", EnvironmentFile: "/etc/probermesh/agent.env" })) {
    expect({ k, v: agent.get(k) }).toEqual({ k, v });
  }
  expect(read("deploy/systemd/agent.env.example")).toContain("PROBER_TOKEN=");
  const server = unit("deploy/systemd/probermesh-server.service");
  for (const [k, v] of Object.entries({ User: "probermesh", NoNewPrivileges: "yes", ProtectSystem: "strict", CapabilityBoundingSet: "", ExecReload: "/bin/kill -HUP $MAINPID" })) {
    expect({ k, v: server.get(k) }).toEqual({ k, v });
  }
});

test("Dockerfile: a build stage with npm only, a minimal runtime stage with both binaries", () => {
  const d = read("Dockerfile");
  const froms = d.split("\n").filter((l) => l.startsWith("FROM "));
  expect(froms).toHaveLength(2);
  expect(froms[0]).toMatch(/^FROM node:\S+ AS build$/);
  expect(d).toContain("RUN npm install");
  expect(d).toContain("RUN npx bun run scripts/build.ts");
  expect(d).toContain("COPY --from=build /src/dist/server /probermesh-server");
  expect(d).toContain("COPY --from=build /src/dist/agent /probermesh-agent");
  expect(read(".dockerignore")).toContain("node_modules");
});

test("Dockerfile: its version is package.json's (OCI label from a build ARG checked against package.json, no stale literal)", async () => {
  const d = read("Dockerfile");
  const version = (JSON.parse(read("package.json")) as { version: string }).version;
  // Base images may pin their own versions; every other x.y.z (tags in the comments, defaults)
  // must be package.json's.
  const literals = d.split("\n").filter((l) => !l.startsWith("FROM ")).flatMap((l) => l.match(/\b\d+\.\d+\.\d+\b/g) ?? []);
  expect({ stale: literals.filter((v) => v !== version) }).toEqual({ stale: [] });
  const stages = d.split(/^FROM /m).slice(1);
  expect(stages).toHaveLength(2);
  expect(stages[0]).toMatch(/^ARG VERSION$/m);
  expect(stages[1]).toMatch(/^ARG VERSION$/m);
  expect(stages[1]).toContain('org.opencontainers.image.version="${VERSION}"');
  // The build stage's check, run as docker would (sh, in the build context, VERSION from --build-arg).
  const lines = d.split("\n");
  const at = lines.findIndex((l) => l.startsWith("RUN ") && l.includes("package.json"));
  expect(at).toBeGreaterThan(-1);
  let cmd = "";
  for (let i = at; ; i++) {
    cmd += lines[i]!.replace(/\\$/, ""); // docker joins continuation lines
    if (!lines[i]!.endsWith("\\")) break;
  }
  cmd = cmd.replace(/^RUN /, "");
  const check = async (v: string) => (await run(["env", `VERSION=${v}`, "sh", "-c", cmd])).code;
  expect(await check("")).toBe(0);
  expect(await check(version)).toBe(0);
  expect(await check(`${version}-not-this-one`)).not.toBe(0);
});

const analyze = Bun.which("systemd-analyze");
if (!analyze) skipReason("deploy.test.ts: systemd-analyze is not installed; the unit files are checked as text only");

test.skipIf(!analyze)("systemd-analyze verify accepts both units", async () => {
  // The install paths do not exist here: point ExecStart at the built binaries, make the env file optional.
  const dir = mkdtempSync(`${tmpdir()}/pm-units-`);
  for (const [role, bin] of [["agent", AGENT_BIN], ["server", SERVER_BIN]]) {
    const text = read(`deploy/systemd/probermesh-${role}.service`).replaceAll(`/usr/local/bin/probermesh-${role}`, bin!).replace(/^EnvironmentFile=/m, "EnvironmentFile=-");
    writeFileSync(`${dir}/probermesh-${role}.service`, text);
  }
  const r = await run([analyze!, "verify", `${dir}/probermesh-agent.service`, `${dir}/probermesh-server.service`]);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
});
