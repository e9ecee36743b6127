/**
 * An HTTP proxy from a Unix socket to TCP ports on 127.0.0.1 of the network namespace it runs in
 * (started with `ip netns exec NS bun tests/helpers/nsproxy.ts SOCKET`). A Unix socket is a file,
 * reachable from every network namespace: the test process (in its own namespace) reads a server's
 * /metrics inside a test namespace with `fetch("http://ns/PORT/metrics", { unix: SOCKET })`, and no
 * address outside the namespace is involved. The first path segment is the port.
 */
import { unlinkSync } from "node:fs";

const sock = process.argv[2];
if (!sock) {
  process.stderr.write("usage: nsproxy.ts SOCKET\n");
  process.exit(2);
}
try {
  unlinkSync(sock);
} catch {
  /* not there */
}
Bun.serve({
  unix: sock,
  async fetch(req) {
    const u = new URL(req.url);
    const m = /^\/(\d{1,5})(\/.*)?$/.exec(u.pathname);
    if (!m) return new Response("path must start with /PORT/\n", { status: 400 });
    const headers = new Headers(req.headers);
    headers.delete("host");
    try {
      const r = await fetch(`http://127.0.0.1:${m[1]}${m[2] ?? "/"}${u.search}`, {
        method: req.method,
        headers,
        body: req.method === "GET" || req.method === "HEAD" ? undefined : await req.arrayBuffer(),
        redirect: "manual",
      });
      // fetch decoded the body: its length and encoding headers no longer apply.
      const out = new Headers(r.headers);
      out.delete("content-encoding");
      out.delete("content-length");
      return new Response(await r.arrayBuffer(), { status: r.status, headers: out });
    } catch (e) {
      return new Response(`nsproxy: ${(e as Error).message}\n`, { status: 502, headers: { "x-nsproxy-error": "1" } });
    }
  },
});
process.stdout.write(`nsproxy listening on ${sock}\n`);
