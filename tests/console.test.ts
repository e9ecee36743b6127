/**
 * The web console in a real headless Chromium (Debian's `chromium`, driven by puppeteer-core) on
 * a running mesh of the compiled binaries: every region in the heat map with values in the cells,
 * a pair opened by a click (chart and per-agent breakdown), HTTP phase bars, the agents. Writes a
 * screenshot to .tmp/artifacts/console.png.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { startWebMesh, type WebMesh } from "./helpers/mesh.ts";
import { IS_ROOT, ROOT, killAll, skipReason, waitFor } from "./helpers/procs.ts";

/** The page's `document`, as the callbacks below (run inside Chromium) use it. */
declare const document: { querySelectorAll(selector: string): { length: number }; getElementById(id: string): { hidden: boolean } | null };

const chromium = Bun.which("chromium");
const ok = IS_ROOT && chromium !== null;
if (!ok) skipReason(`console.test.ts needs root (ICMP) and chromium (apt-get install chromium); root=${IS_ROOT} chromium=${chromium}`);

const REGIONS = ["ui-a", "ui-b", "ui-c"];

describe.skipIf(!ok)("web console in Chromium", () => {
  let browser: Browser;
  let page: Page;
  let mesh: WebMesh;
  let base = "";

  beforeAll(async () => {
    mesh = await startWebMesh(REGIONS.map((r, i) => [r, `127.0.76.${i + 1}`]));
    base = mesh.base;
    // Data for all six pairs and the HTTP target from every region, before the browser looks.
    await waitFor("mesh data", 20_000, async () => {
      const [m, h] = await Promise.all([fetch(`${base}/api/v1/mesh`).then((r) => r.json()), fetch(`${base}/api/v1/http`).then((r) => r.json())]) as [{ pairs: unknown[] }, { targets: unknown[] }];
      return m.pairs.length === 6 && h.targets.length === 3;
    });
    browser = await puppeteer.launch({ executablePath: chromium!, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 1400 });
    const external: string[] = [];
    page.on("request", (r) => {
      if (!r.url().startsWith(base)) external.push(r.url());
    });
    await page.goto(base, { waitUntil: "networkidle0" });
    expect(external).toEqual([]); // every asset comes from the server: works air-gapped
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await killAll();
    mesh?.stop();
  });

  test("the heat map shows every region and pair, values readable without color", async () => {
    // Six cells, each with data: a window in which a pair's results had not arrived yet shows "none".
    await page.waitForFunction(() => [...(document.querySelectorAll("#heatmap td.cell[data-source]") as unknown as { className: string }[])].filter((c) => c.className.includes("ok")).length === 6, { timeout: 30_000 });
    const headers = await page.$$eval("#heatmap tr:first-child th", (ths) => ths.map((t) => t.textContent));
    expect(headers.slice(1)).toEqual(REGIONS);
    const cells = await page.$$eval("#heatmap td.cell[data-source]", (tds) => tds.map((td) => ({ cls: td.className, text: td.textContent ?? "" })));
    for (const c of cells) {
      expect(c.cls).toContain("ok"); // loopback: no loss
      expect(c.text).toMatch(/^0\.0 %\d+(\.\d+)? ms$/);
    }
  }, 30_000);

  test("a click on a pair opens its chart and which agent probed which address", async () => {
    await page.click('#heatmap td.cell[data-source="ui-a"][data-target="ui-b"]');
    await page.waitForFunction(() => !document.getElementById("pair")!.hidden && document.querySelectorAll("#links tr").length > 1, { timeout: 10_000 });
    expect(await page.$eval("#pair-title", (e) => e.textContent)).toBe("ui-a → ui-b");
    await page.waitForSelector("#pair-chart polyline.rtt", { timeout: 10_000 });
    const link = await page.$$eval("#links tr:nth-child(2) td", (tds) => tds.map((t) => t.textContent));
    expect(link.slice(0, 3)).toEqual(["127.0.76.1", "127.0.76.2", "0.0 %"]);
  }, 30_000);

  test("the targets view shows every kind (http with httpstat phase bars and status, tcp with its phases); agents are listed alive; screenshot", async () => {
    await page.waitForFunction(() => document.querySelectorAll("#targets-table tr").length === 7, { timeout: 10_000 });
    const rows = await page.$$eval("#targets-table tr:not(:first-child)", (trs) => trs.map((tr) => ({
      cells: [...tr.querySelectorAll("td")].map((td) => td.textContent),
      segments: [...tr.querySelectorAll(".bar span")].map((s) => s.className),
    })));
    expect(rows.map((r) => r.cells[0]).sort()).toEqual(["http", "http", "http", "tcp", "tcp", "tcp"]);
    for (const r of rows) {
      expect(r.cells[3]).toBe(r.cells[0] === "http" ? "200" : "ok");
      expect(r.segments).toEqual(r.cells[0] === "http" ? ["p-resolve", "p-connect", "p-tls", "p-processing", "p-transfer"] : ["p-resolve", "p-connect", "p-tls"]);
      expect(r.cells[7]).toBe("none");
    }
    const agents = await page.$$eval("#agents-table tr:not(:first-child)", (trs) => trs.map((tr) => [tr.children[0]!.textContent, tr.lastElementChild!.textContent]));
    expect(agents.sort()).toEqual(REGIONS.map((r) => [r, "alive"]));
    mkdirSync(`${ROOT}.tmp/artifacts`, { recursive: true });
    await page.screenshot({ path: `${ROOT}.tmp/artifacts/console.png`, fullPage: true });
  }, 30_000);
});
