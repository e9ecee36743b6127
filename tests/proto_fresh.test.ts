/**
 * The generated code in lib/rpc/gen must be what `npm run gen` produces from proto/ today.
 */
import { expect, test } from "bun:test";
import { cpSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { ROOT, run } from "./helpers/procs.ts";

function files(dir: string, base = dir): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) for (const [k, v] of files(p, base)) out.set(k, v);
    else out.set(p.slice(base.length), readFileSync(p, "utf8"));
  }
  return out;
}

// buf runs the protoc-gen-es plugin from node_modules/.bin (npm scripts put it on PATH; bun test alone does not).
process.env.PATH = `${ROOT}node_modules/.bin:${process.env.PATH}`;

test("lib/rpc/gen is up to date with proto/ (run `npm run gen` to refresh)", async () => {
  const tmp = mkdtempSync(`${tmpdir()}/pm-gen-`);
  for (const f of ["proto", "buf.yaml", "buf.gen.yaml"]) cpSync(`${ROOT}${f}`, `${tmp}/${f}`, { recursive: true });
  const r = await run([`${ROOT}node_modules/.bin/buf`, "generate", tmp, "--template", `${tmp}/buf.gen.yaml`, "-o", tmp], {});
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const fresh = files(`${tmp}/lib/rpc/gen`);
  const committed = files(`${ROOT}lib/rpc/gen`);
  expect([...committed.keys()].sort()).toEqual([...fresh.keys()].sort());
  for (const [k, v] of fresh) expect(committed.get(k)).toBe(v);
});
