/**
 * Regenerates lib/rpc/gen from proto/ with buf + protoc-gen-es (both npm devDependencies).
 * Usage: `npm run gen` (or `bun run scripts/gen-proto.ts`). tests/proto_fresh.test.ts fails when
 * the committed output differs from what this produces.
 */
import { $ } from "bun";

const root = new URL("..", import.meta.url).pathname;
process.env.PATH = `${root}node_modules/.bin:${process.env.PATH}`;
await $`buf lint`.cwd(root);
await $`buf generate`.cwd(root);
console.log("generated lib/rpc/gen from proto/");
