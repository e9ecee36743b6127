/**
 * HTTP benchmark: ProberMesh's HTTP prober against `curl -w` and Debian's blackbox_exporter
 * (`/probe`, probe_http_duration_seconds{phase}), side by side in one run on the same local servers,
 * then one agent's throughput and leak check. Needs root (a network namespace with its own
 * resolver), curl, openssl and prometheus-blackbox-exporter. Prints markdown tables.
 *
 *   npm run bench:http                  # 50 probes per tool and target; throughput 1,000 targets × 200 rounds
 *   npm run bench:http -- --rounds 20   # shorter throughput run
 *
 * Everything runs inside one namespace (tests/helpers/dnsns.ts): its DNS server answers after
 * 20 ms, so the resolve phase is measured too; servers are tests/helpers/http_servers.ts.
 */
import { $, spawn } from "bun";
import { createDnsNamespace } from "../tests/helpers/dnsns.ts";
import { runComparison, runThroughput } from "./http_inner.ts";

const args = process.argv.slice(2);
const rounds = Number(args[args.indexOf("--rounds") + 1] || 0) || 200;

if (args.includes("--inner")) {
  console.log(await runComparison(50));
  console.log(await runThroughput(1000, rounds));
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  console.error("bench/http.ts needs root: it runs in a network namespace with its own resolv.conf");
  process.exit(2);
}
for (const tool of ["curl", "prometheus-blackbox-exporter", "openssl"]) {
  if ((await $`which ${tool}`.quiet().nothrow()).exitCode !== 0) {
    console.error(`bench/http.ts needs ${tool} (apt-get install curl prometheus-blackbox-exporter openssl)`);
    process.exit(2);
  }
}
const ns = await createDnsNamespace("bench-http", 20);
try {
  const p = spawn([...ns.inNs, process.execPath, new URL(import.meta.url).pathname, "--inner", "--rounds", String(rounds)], { stdout: "inherit", stderr: "inherit" });
  process.exitCode = await p.exited;
} finally {
  await ns.remove();
}
