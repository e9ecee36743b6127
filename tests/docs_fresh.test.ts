/**
 * docs/ holds the contract; its lists (flags, metrics, failed_reason, reject reasons, module
 * options) and the per-check-kind Prometheus rules are generated from the code that defines them.
 * Stale docs fail here: run `npm run docs`.
 */
import { expect, test } from "bun:test";
import { renderDocs } from "../scripts/gen-docs.ts";

test("the generated blocks of docs/ are up to date (run `npm run docs` to refresh)", () => {
  const docs = renderDocs();
  expect(docs.size).toBeGreaterThan(0);
  for (const [path, [text, fresh]] of docs) expect({ path, text }).toEqual({ path, text: fresh });
});

test("every docs/ page is linked from docs/README.md, and code comments point to docs/, not to a file outside the repository", async () => {
  const index = await Bun.file(new URL("../docs/README.md", import.meta.url)).text();
  const docsDir = new URL("../docs/", import.meta.url).pathname;
  for (const path of renderDocs().keys()) {
    if (!path.startsWith(docsDir)) continue; // deploy/prometheus rules also carry generated blocks
    const rel = path.slice(docsDir.length);
    if (rel !== "README.md") expect(index).toContain(`(${rel})`);
  }
  const glob = new Bun.Glob("{lib/**/*.ts,server.ts,agent.ts,proto/**/*.proto}");
  const offenders: string[] = [];
  for await (const f of glob.scan({ cwd: new URL("..", import.meta.url).pathname })) {
    if (f.startsWith("lib/rpc/gen/")) continue;
    if ((await Bun.file(new URL(`../${f}`, import.meta.url)).text()).includes("SPEC.md")) offenders.push(f);
  }
  expect(offenders).toEqual([]);
});
