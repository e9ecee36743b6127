/**
 * resolveHostWithin (lib/probes/resolve.ts) stops waiting when the probe is aborted: an agent
 * shutting down does not keep a timer per pending lookup until the module's timeout. A name that
 * never resolves is not needed: "localhost.invalid" goes to the resolver (asynchronous), and the
 * abort comes first or during the wait.
 */
import { expect, test } from "bun:test";
import { resolveHostWithin } from "../lib/probes/resolve.ts";

test("an aborted signal rejects the wait with its reason, before or during the lookup; an IP literal is not affected", async () => {
  const before = new AbortController();
  before.abort(new Error("agent stopping"));
  await expect(resolveHostWithin("localhost.invalid", 60_000, "ip4", true, before.signal)).rejects.toThrow("agent stopping");
  const during = new AbortController();
  const pending = resolveHostWithin("localhost.invalid", 60_000, "ip4", true, during.signal);
  during.abort(new Error("stop now"));
  await expect(pending).rejects.toThrow(/stop now|ENOTFOUND|not found/i);
  expect((await resolveHostWithin("127.0.0.1", 60_000, "ip4", true, new AbortController().signal)).ip).toBe("127.0.0.1");
});
