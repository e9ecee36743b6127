/**
 * Web console benchmark: 100 regions (one simulated agent each, a full mesh: 9,900 pairs) pushed
 * over the real protocol to the compiled server, then the console opened in headless Chromium
 * (Debian's chromium, puppeteer-core). Prints the time from navigation to the complete heat map,
 * the /api/v1/mesh size and time, and a screenshot path. Needs chromium.
 *
 *   bun run bench/console.ts [--regions 100]
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdirSync } from "node:fs";
import puppeteer from "puppeteer-core";
import { ProberMeshService } from "../lib/rpc/gen/probermesh/v1/probermesh_pb.ts";
import { ROOT, SERVER_BIN, freePort, killAll, start, waitFor } from "../tests/helpers/procs.ts";
import { meshBatch, simAgents } from "./sim.ts";

declare const document: { querySelectorAll(s: string): { length: number } };
const i = process.argv.indexOf("--regions");
const regions = i > 0 ? Number(process.argv[i + 1]) : 100;
const chromium = Bun.which("chromium");
if (!chromium) {
  console.error("bench/console.ts needs chromium (apt-get install chromium)");
  process.exit(2);
}
const [rpc, web] = [await freePort(), await freePort()];
const base = `http://127.0.0.1:${web}`;
try {
  start([SERVER_BIN, "-server.rpc.listen.addr", `127.0.0.1:${rpc}`, "-server.http.listen.addr", `127.0.0.1:${web}`, "-server.aggregation.interval", "1s", "-server.series.cache.ratio", "60"]);
  await waitFor("server ready", 10_000, async () => (await fetch(`${base}/-/ready`)).ok);
  const client = createClient(ProberMeshService, createConnectTransport({ baseUrl: `http://127.0.0.1:${rpc}`, httpVersion: "1.1", useBinaryFormat: true }));
  const sim = simAgents(regions, regions);
  for (const a of sim) await client.heartbeat({ agent: a });
  // Half a pair in ten loses echoes, so the heat map has colors to draw.
  const now = Date.now();
  for (const [k, a] of sim.entries()) {
    const batch = meshBatch(sim, k, "0.2", k % 10 === 0 ? 8 : 0);
    for (const r of batch) r.time = timestampFromMs(now - 500);
    await client.pushResults({ agent: a, icmp: batch });
  }
  const pairs = regions * (regions - 1);
  await waitFor("the window published", 15_000, async () => ((await (await fetch(`${base}/api/v1/mesh`)).json()) as { pairs: unknown[] }).pairs.length === pairs);
  const a0 = performance.now();
  const apiBytes = (await (await fetch(`${base}/api/v1/mesh`)).text()).length;
  const apiMs = performance.now() - a0;
  const browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  const page = await browser.newPage();
  await page.setViewport({ width: 1600, height: 1200 });
  const t0 = performance.now();
  await page.goto(base);
  await page.waitForFunction((n: number) => document.querySelectorAll("#heatmap td.cell[data-source]").length === n, { timeout: 30_000, polling: 10 }, pairs);
  const renderMs = performance.now() - t0;
  mkdirSync(`${ROOT}.tmp/artifacts`, { recursive: true });
  const shot = `${ROOT}.tmp/artifacts/console-${regions}-regions.png`;
  await page.screenshot({ path: shot });
  await browser.close();
  console.log(`## Web console: ${regions} regions, ${pairs.toLocaleString("en")} pairs\n`);
  console.log("| regions | pairs | /api/v1/mesh KB | API ms | navigation to complete heat map ms |");
  console.log("|---|---|---|---|---|");
  console.log(`| ${regions} | ${pairs} | ${(apiBytes / 1024).toFixed(0)} | ${apiMs.toFixed(0)} | ${renderMs.toFixed(0)} |`);
  console.log(`\nscreenshot: ${shot.slice(ROOT.length)}`);
} finally {
  await killAll();
}
process.exit(0);
