/**
 * `npm run release`: both roles for linux-x64 and linux-arm64 (`bun build --compile --target`)
 * into dist/release/, named probermesh-ROLE-VERSION-linux-ARCH, and dist/release/SHA256SUMS
 * (`sha256sum -c SHA256SUMS` checks a download).
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { VERSION } from "../lib/version.ts";
import { buildOne } from "./build.ts";

const out = new URL("../dist/release/", import.meta.url).pathname;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const sums: string[] = [];
for (const arch of ["x64", "arm64"]) {
  for (const role of ["server", "agent"] as const) {
    const file = await buildOne(role, `${out}probermesh-${role}-${VERSION}-linux-${arch}`, `bun-linux-${arch}`);
    sums.push(`${createHash("sha256").update(readFileSync(file)).digest("hex")}  ${basename(file)}`);
    console.log(`built ${basename(file)}`);
  }
}
writeFileSync(`${out}SHA256SUMS`, `${sums.join("\n")}\n`);
console.log(`wrote dist/release/SHA256SUMS`);
