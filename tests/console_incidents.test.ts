/**
 * The console's "What is wrong now" panel in a real headless Chromium (puppeteer-core), showing a
 * real incident of the real server: the mesh fault bed (tests/helpers/meshbed.ts) with three
 * regions of two agents (dist/server in core, dist/agent per host namespace, 1 s windows, short
 * ICMP rounds), and host a1 dropping 30 % of its egress with nftables (`numgen random mod 100 <
 * 30 drop` on its output, lo spared). The localiser names it `agent r1/<a1>`; the panel must show
 * it (scope badge titled with its meaning, subject, summary, since, evidence), a click on it must
 * mark exactly its evidence cells in the heat map, a click on a cell chip opens that pair; after
 * the restore it moves to "recently ended" and the panel says nothing is wrong. A second page
 * gets a 404 for /api/v1/incidents (a server before 0.7): the panel says so, the rest renders.
 *
 * How Chromium reaches the server: the server's HTTP listens on 127.0.0.1 inside core, which the
 * test process (outside every bed namespace) cannot address. Chromium itself runs inside core:
 * puppeteer's executablePath is a two-line wrapper, `exec ip netns exec <core> chromium "$@"`,
 * and puppeteer talks to it over a pipe (fds 3 and 4, which `ip netns exec` passes on), not over
 * a DevTools port; the page opens http://127.0.0.1:<port>/ in core like a browser on that host.
 * No address outside the bed's namespaces is involved, and no forwarder can fail in between.
 *
 * Needs root, iproute2, nftables and chromium; run `bun run scripts/build.ts` first. A screenshot
 * goes to $PMF_LOGS/console_incidents.png when PMF_LOGS is set.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { SCOPES } from "../lib/localiser/model.ts";
import { bedAgent, bedServer, createMeshBed, faultBedMissing, meshProbeFile, type BedServer, type MeshBed } from "./helpers/meshbed.ts";
import { nft } from "./helpers/nft.ts";
import { killAll, skipReason, waitFor } from "./helpers/procs.ts";

/** The page's `document`, as the callbacks below (run inside Chromium) use it. */
declare const document: { querySelectorAll(selector: string): ArrayLike<{ getAttribute(name: string): string | null }>; querySelector(selector: string): { textContent: string | null } | null; getElementById(id: string): { hidden: boolean } | null };

const chromium = Bun.which("chromium");
const missing = (await faultBedMissing()) || (chromium ? "" : "needs chromium (apt-get install chromium)");
if (missing) skipReason(`tests/console_incidents.test.ts ${missing}`);

const REGIONS = { a1: "r1", a2: "r1", b1: "r2", b2: "r2", c1: "r3", c2: "r3" } as const;
const WEB = 6001;

type Incident = { id: string; scope: string; subject: string; summary: string; started: string; ended: string | null; evidence: { cells: { source_region: string; target_region: string }[] } };
type Incidents = { active: Incident[]; recent: Incident[] };

describe.skipIf(!!missing)("console: what is wrong now", () => {
  let bed: MeshBed;
  let server: BedServer;
  let browser: Browser;
  let page: Page;
  let subject = "";
  const errors: string[] = [];
  const agentIncident = (j: Incidents) => j.active.find((i) => i.scope === "agent" && i.subject === subject);

  beforeAll(async () => {
    bed = await createMeshBed("cin", Object.keys(REGIONS));
    subject = `r1/${bed.host("a1").ip}`;
    server = bedServer(bed, 6000, WEB, ["-server.probe.file", meshProbeFile(bed, REGIONS)]);
    await server.start();
    for (const h of bed.hosts) bedAgent(bed, h, REGIONS[h.name as keyof typeof REGIONS], server.rpcAddr);
    const wrapper = `${mkdtempSync(`${tmpdir()}/pm-cin-`)}/chromium-in-core`;
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${bed.core.ns} ${chromium} "$@"\n`);
    chmodSync(wrapper, 0o755);
    browser = await puppeteer.launch({ executablePath: wrapper, pipe: true, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
    page = await browser.newPage();
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.setViewport({ width: 1280, height: 1200 });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await killAll();
    await bed?.remove();
  });

  test("a clean mesh: nothing wrong", async () => {
    await waitFor("all six pairs at loss 0", 30_000, async () => {
      const m = await server.json<{ pairs: { loss_ratio: number }[] }>("/api/v1/mesh");
      return m.pairs.length >= 6 && m.pairs.every((p) => p.loss_ratio === 0);
    });
    await page.goto(`http://127.0.0.1:${WEB}/`, { waitUntil: "networkidle0" });
    await page.waitForFunction(() => (document.querySelector("#incidents-active .all-clear")?.textContent ?? "").startsWith("Nothing wrong"), { timeout: 15_000 });
    expect(await page.$$eval("#incidents .incident", (c) => c.length)).toBe(0);
  }, 60_000);

  test("a1 drops 30 % of its egress: the panel shows the agent incident; a click marks exactly its evidence cells", async () => {
    await nft(bed.host("a1").ns, ["table inet pmcin {", "  chain output {", "    type filter hook output priority 0; policy accept;", '    oifname != "lo" numgen random mod 100 < 30 drop', "  }", "}"].join("\n"));
    const t0 = Date.now();
    const api = await waitFor(`incident agent ${subject}`, 40_000, async () => agentIncident(await server.json<Incidents>("/api/v1/incidents")));
    console.log(`agent incident active after ${Date.now() - t0} ms: ${api.summary}`);
    const card = `#incidents .incident[data-scope="agent"][data-subject="${subject}"]`;
    await page.waitForSelector(card, { timeout: 15_000 });
    const shown = await page.$eval(card, (c) => ({
      badge: c.querySelector(".scope")!.textContent, title: c.querySelector(".scope")!.getAttribute("title"), subject: c.querySelector(".inc-subject")!.textContent,
      since: c.querySelector(".inc-since")!.textContent, summary: c.querySelector(".inc-summary")!.textContent ?? "", evidence: c.querySelector(".inc-evidence")!.textContent,
    }));
    expect(shown.badge).toBe("agent");
    expect(shown.title).toBe(SCOPES.agent);
    expect(shown.subject).toBe(subject);
    expect(shown.since).toMatch(/^since \d+ s ago \(.+\)$/);
    // The summary is the server's (its numbers move from window to window; on a loaded machine the
    // agent's own health may also call it starved in some windows).
    expect(api.summary.startsWith(`agent ${subject}`)).toBe(true);
    expect(shown.summary).toMatch(new RegExp(`^agent ${subject.replace(/\./g, "\\.")}( is starved \\(rounds late or loopback loss\\))?: \\d+ of \\d+ links lossy, [\\d.]+ % lost(, direction \\w+)?, confidence [\\d.]+$`));
    expect(shown.evidence).toMatch(/^\d+ of \d+ links lossy · loss [\d.]+ % · confidence [\d.]+ · direction \w+/);

    await page.click(card);
    // The page's marks, its card's chips and the server's evidence, read together until they agree
    // (the page polls every 5 s, the evidence is recomputed every 1 s window).
    let seen: unknown;
    const marked = await waitFor("the marked cells to be the incident's evidence cells", 15_000, async () => {
      const m = await page.$eval(card, (c) => ({
        chips: [...c.querySelectorAll(".chip")].map((b) => `${b.getAttribute("data-source")}>${b.getAttribute("data-target")}`).sort(),
        cells: Array.from(document.querySelectorAll("#heatmap td.cell.evidence")).map((td) => `${td.getAttribute("data-source")}>${td.getAttribute("data-target")}`).sort(),
        selected: c.classList.contains("selected"),
      }));
      const evidence = agentIncident(await server.json<Incidents>("/api/v1/incidents"))?.evidence.cells.map((c) => `${c.source_region}>${c.target_region}`).sort();
      seen = { ...m, evidence };
      return m.selected && Bun.deepEquals(m.cells, m.chips) && Bun.deepEquals(m.cells, evidence) ? m : undefined;
    }).catch((e) => { throw new Error(`${(e as Error).message}; last seen ${JSON.stringify(seen)}`); });
    console.log(`evidence cells: ${marked.cells.join(" ")}`);
    expect(marked.cells.every((c) => c.split(">").includes("r1"))).toBe(true); // a1's region in each
    if (process.env.PMF_LOGS) {
      mkdirSync(process.env.PMF_LOGS, { recursive: true });
      await page.screenshot({ path: `${process.env.PMF_LOGS}/console_incidents.png`, fullPage: true });
    }

    // One cell chip: that cell alone, and its pair opens as a click on the cell does.
    const [s, d] = marked.chips[0]!.split(">");
    await page.click(`${card} .chip[data-source="${s}"][data-target="${d}"]`);
    await page.waitForFunction(() => !document.getElementById("pair")!.hidden && document.querySelectorAll("#links tr").length > 1, { timeout: 10_000 });
    expect(await page.$eval("#pair-title", (e) => e.textContent)).toBe(`${s} → ${d}`);
    expect(await page.$$eval("#heatmap td.cell.evidence", (tds) => tds.map((td) => `${td.getAttribute("data-source")}>${td.getAttribute("data-target")}`))).toEqual([`${s}>${d}`]);
  }, 60_000);

  test("restored: the incident moves to recently ended and nothing is wrong", async () => {
    await nft(bed.host("a1").ns, "delete table inet pmcin");
    const t0 = Date.now();
    await page.waitForFunction((subj: string) => document.querySelectorAll(`#incidents-recent li.recent[data-scope="agent"][data-subject="${subj}"]`).length === 1
      && document.querySelectorAll("#incidents .incident").length === 0, { timeout: 40_000 }, subject);
    console.log(`shown as ended ${Date.now() - t0} ms after the restore`);
    expect(await page.$eval("#incidents-active", (e) => e.textContent)).toStartWith("Nothing wrong");
    expect(await page.$eval("#incidents-recent li.recent", (e) => e.textContent)).toStartWith(`agent ${subject}: `);
    expect(await page.$$eval("#heatmap td.cell.evidence", (tds) => tds.length)).toBe(0); // the ended incident's mark is gone
    expect(errors).toEqual([]);
  }, 60_000);

  test("a server before 0.7 (404 for /api/v1/incidents): the panel says so, the heat map still renders", async () => {
    const old = await browser.newPage();
    const oldErrors: string[] = [];
    old.on("pageerror", (e) => oldErrors.push(String(e)));
    await old.setRequestInterception(true);
    old.on("request", (r) => void (r.url().includes("/api/v1/incidents") ? r.respond({ status: 404, contentType: "text/plain", body: "404 Not Found" }) : r.continue()));
    await old.goto(`http://127.0.0.1:${WEB}/`, { waitUntil: "networkidle0" });
    await old.waitForFunction(() => document.querySelectorAll("#heatmap td.cell[data-source]").length === 6, { timeout: 15_000 });
    expect(await old.$eval("#incidents-active", (e) => e.textContent)).toStartWith("not available from this server");
    expect(await old.$eval("#updated", (e) => e.textContent)).toStartWith("updated ");
    expect(oldErrors).toEqual([]);
    await old.close();
  }, 30_000);
});
