/**
 * The layout's rules, checked on the source: imports run one way (utilities at the bottom, then
 * aggregation, metrics and the localiser, probes, config, and server / agent on top; server and agent never import
 * each other), and the server binary loads no FFI (only the ICMP prober, an agent half, does).
 */
import { expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { ROOT, run } from "./helpers/procs.ts";

/** Layer of a file under lib/ (lower = more basic). */
function layer(path: string): number {
  const rules: [RegExp, number][] = [
    [/^lib\/(version|log|steps)\.ts$|^lib\/cli\/|^lib\/rpc\//, 0],
    [/^lib\/(aggregation|metrics|localiser)\//, 1],
    [/^lib\/probes\//, 2],
    [/^lib\/targets\//, 3],
    [/^lib\/(server|agent)\//, 4],
  ];
  for (const [re, n] of rules) if (re.test(path)) return n;
  throw new Error(`${path} is in no layer: add it to tests/layers.test.ts`);
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === "gen" ? [] : sources(`${dir}/${e.name}`)) : e.name.endsWith(".ts") ? [`${dir}/${e.name}`] : [],
  );
}

test("imports in lib/ run one way, and server and agent never import each other", () => {
  const violations: string[] = [];
  for (const file of sources("lib")) {
    const text = readFileSync(join(ROOT, file), "utf8");
    for (const m of text.matchAll(/^import\s[^;]*?from\s+"(\.[^"]+)";/gms)) {
      const target = relative(ROOT, join(ROOT, dirname(file), m[1]!));
      const [a, b] = [layer(file), layer(target)];
      const side = (p: string) => /^lib\/(server|agent)\//.exec(p)?.[1];
      if (b > a || (side(file) && side(target) && side(file) !== side(target))) violations.push(`${file} -> ${target}`);
    }
  }
  expect(violations).toEqual([]);
});

test("the server bundle loads no FFI; the agent bundle does (the ICMP engine)", async () => {
  const out = mkdtempSync(`${tmpdir()}/pm-bundle-`);
  for (const name of ["server", "agent"]) {
    const r = await run([process.execPath, "build", `${ROOT}${name}.ts`, "--target=bun", "--outfile", `${out}/${name}.js`]);
    expect(r.code).toBe(0);
  }
  expect(readFileSync(`${out}/server.js`, "utf8")).not.toContain("bun:ffi");
  expect(readFileSync(`${out}/agent.js`, "utf8")).toContain("bun:ffi");
});
