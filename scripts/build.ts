/**
 * Compiles server.ts and agent.ts into self-contained executables dist/server and dist/agent
 * (`bun build --compile`; they run with no node_modules beside them).
 */
import { $ } from "bun";

const root = new URL("..", import.meta.url).pathname;
for (const name of ["server", "agent"]) {
  await $`${process.execPath} build --compile --minify-syntax ${root}${name}.ts --outfile ${root}dist/${name}`.quiet();
  console.log(`built dist/${name}`);
}
