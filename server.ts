#!/usr/bin/env bun
/**
 * ProberMesh server: hands out targets, receives results, aggregates per region pair and serves
 * Prometheus metrics. Flags in docs/flags.md; logic in lib/server/.
 */
import { parseFlagsOrExit } from "./lib/cli/flags.ts";
import { SERVER_FLAGS } from "./lib/server/flags.ts";
import { createLogger } from "./lib/log.ts";
import { ConfigError } from "./lib/targets/config.ts";
import type { Discovery } from "./lib/server/pool.ts";
import { StartupRefusal } from "./lib/server/security.ts";
import { checkConfig } from "./lib/server/check.ts";
import { startServer } from "./lib/server/server.ts";
import { versionLine } from "./lib/version.ts";

const f = parseFlagsOrExit("server", "ProberMesh server", versionLine(), SERVER_FLAGS, process.argv.slice(2));
if (f["check.config"]) {
  const { ok, lines } = checkConfig(f["server.probe.file"] as string, f["server.web.config.file"] as string);
  (ok ? process.stdout : process.stderr).write(lines.map((l) => `${l}\n`).join(""));
  process.exit(ok ? 0 : 2);
}
const discovery = f["server.icmp.discovery"] as Discovery;
if (discovery === "static" && !f["server.probe.file"]) {
  process.stderr.write("server: flag -server.probe.file is required when -server.icmp.discovery is static\n");
  process.exit(2);
}
const log = createLogger("server", f["log.level"] as string, f["log.format"] as "auto" | "text" | "json");
const str = (name: string) => f[name] as string;
try {
  const srv = await startServer({
    rpcListenAddr: str("server.rpc.listen.addr"),
    httpListenAddr: str("server.http.listen.addr"),
    probeFile: str("server.probe.file"),
    discovery,
    aggregationIntervalMs: f["server.aggregation.interval"] as number,
    seriesCacheRatio: f["server.series.cache.ratio"] as number,
    probeSelf: f["server.probe.self"] as boolean,
    peersPerRegion: f["server.mesh.peers.per.region"] as number,
    refetchRate: f["server.pool.refetch.rate"] as number,
    pushQueueMaxResults: f["server.push.queue.max.results"] as number,
    // Beside this file, in the source tree and in the compiled binary (scripts/build.ts bundles it).
    localiserWorkerUrl: new URL("./lib/localiser/worker.ts", import.meta.url).href,
    tokenFile: str("server.rpc.token.file"),
    rpcTlsCertFile: str("server.rpc.tls.cert.file"),
    rpcTlsKeyFile: str("server.rpc.tls.key.file"),
    rpcTlsClientCaFile: str("server.rpc.tls.client.ca.file"),
    insecure: f["server.rpc.insecure"] as boolean,
    webConfigFile: str("server.web.config.file"),
    enableLifecycle: f["server.web.enable-lifecycle"] as boolean,
    historyRetentionMs: f["server.web.history.retention"] as number,
    maxAgents: f["server.registry.max.agents"] as number,
    maxRegions: f["server.registry.max.regions"] as number,
    registryUrl: str("server.registry.url"),
    forgetAfterMs: f["server.agent.forget.after"] as number,
    meshKeyFile: str("server.mesh.key.file"),
    log,
  });
  const stop = async () => {
    log.info("shutting down");
    await srv.close();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  process.on("SIGHUP", () => void srv.reload());
} catch (e) {
  process.stderr.write(`server: ${(e as Error).message}\n`);
  process.exit(e instanceof ConfigError || e instanceof StartupRefusal || !(e as NodeJS.ErrnoException).code ? 2 : 1);
}
