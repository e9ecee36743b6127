/**
 * One wait for a socket event, shared by the connection-based kinds (http, grpc): the pattern that
 * keeps a probe's result final (lib/probes/kind.ts Prober.probe): it settles exactly once,
 * whichever comes first of the awaited event, "error", "close", the deadline or the abort signal,
 * and then removes every listener and its timer.
 */
import type net from "node:net";

/** How a wait ended when it did not see its event. */
export type WaitOutcome = "timeout" | "error" | "close" | "abort";

/**
 * Waits for `event` ("connect", "secureConnect", ...) on `sock`.
 * @param deadline performance.now() milliseconds
 * @param fail builds the rejection for an outcome (the kind's own failure type); `e` is the socket's error for "error"
 * @returns resolves on the event; rejects with fail(...) otherwise
 */
export function waitForSocket(sock: net.Socket, event: string, deadline: number, fail: (outcome: WaitOutcome, e?: Error) => Error, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => settle(fail("timeout")), Math.max(0, deadline - performance.now()));
    const onOk = () => settle();
    const onErr = (e: Error) => settle(fail("error", e));
    const onClose = () => settle(fail("close"));
    const onAbort = () => settle(fail("abort"));
    function settle(err?: Error) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      sock.off(event, onOk).off("error", onErr).off("close", onClose);
      if (err) reject(err);
      else resolve();
    }
    sock.once(event, onOk).once("error", onErr).once("close", onClose);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort();
  });
}
