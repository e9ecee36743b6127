/**
 * The fault bed itself (tests/helpers/meshbed.ts, nft.ts): namespaces joined by a bridge reach
 * each other, a cut isolates one namespace and restore() heals it, the echo-request counter
 * counts what left, a dropped TCP port refuses connections and "answers lost" lets the request
 * reach the listener while the client hears nothing. The other fault tests rely on exactly this.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createMeshBed, faultBedMissing, type MeshBed } from "../helpers/meshbed.ts";
import { cut, dropTcpPort, echoRequestCounter, restore } from "../helpers/nft.ts";
import { killAll, skipReason } from "../helpers/procs.ts";

const missing = await faultBedMissing();
if (missing) skipReason(`tests/faults/bed.test.ts ${missing}`);

describe.skipIf(!!missing)("fault bed", () => {
  let bed: MeshBed;
  beforeAll(async () => {
    bed = await createMeshBed("bed", ["a", "b"]);
  }, 60_000);
  afterAll(async () => {
    await killAll();
    await bed?.remove();
  });

  test("hosts reach each other; a cut isolates one and restore heals it; the counter counts what left", async () => {
    const [a, b] = [bed.host("a"), bed.host("b")];
    const count = await echoRequestCounter(a.ns);
    await bed.reach(a.ns, [b.ip, bed.core.ip]);
    const sent = await count.read();
    expect(sent).toBeGreaterThanOrEqual(2);
    await cut(b.ns);
    await expect(bed.reach(a.ns, [b.ip], 1500)).rejects.toThrow(/not all/);
    await expect(bed.reach(b.ns, [bed.core.ip], 1500)).rejects.toThrow(/not all/);
    // Requests a cut namespace tried to send never left it: only a's count rose (a sends ~15 in 1.5 s).
    expect(await count.read()).toBeGreaterThan(sent + 5);
    await restore(b.ns);
    await bed.reach(a.ns, [b.ip]);
  }, 60_000);

  test("a dropped TCP port refuses; 'answers lost' delivers the request but not the answer", async () => {
    const a = bed.host("a");
    // A tiny HTTP server in core that counts the requests it got.
    const script = `let n = 0; Bun.serve({ hostname: "0.0.0.0", port: 7100, fetch(r) { const u = new URL(r.url); if (u.pathname === "/count") return new Response(String(n)); n++; return new Response("x".repeat(500)); } }); console.log("up");`;
    const srv = bed.start(bed.core.ns, [process.execPath, "-e", script]);
    for (let i = 0; i < 100 && !srv.output().includes("up"); i++) await Bun.sleep(50);
    const curl = (timeoutS: number) => bed.exec(a.ns, [process.execPath, "-e", `try { const r = await fetch("http://${bed.core.ip}:7100/x", { signal: AbortSignal.timeout(${timeoutS * 1000}) }); console.log(r.status); } catch (e) { console.log("failed " + e.name); }`]);
    const count = async () => Number(await (await bed.coreFetch(7100, "/count")).text());
    expect((await curl(5)).stdout.trim()).toBe("200");
    expect(await count()).toBe(1);
    await dropTcpPort(a.ns, 7100, "both", bed.core.ip);
    expect((await curl(2)).stdout.trim()).toMatch(/^failed/);
    expect(await count()).toBe(1);
    await restore(a.ns);
    await dropTcpPort(a.ns, 7100, "answers", bed.core.ip);
    expect((await curl(2)).stdout.trim()).toMatch(/^failed/);
    expect(await count()).toBe(2); // the server got it
    await restore(a.ns);
    expect((await curl(5)).stdout.trim()).toBe("200");
    await srv.kill();
  }, 60_000);
});
