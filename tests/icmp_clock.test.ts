/**
 * ICMP timing against wall-clock steps (lib/probes/icmp/clock.ts, socket.ts): RTTs, timeouts and
 * request spacing are monotonic; a kernel receive stamp (CLOCK_REALTIME) is used only when its age
 * by the wall clock is plausible. Real echo replies on 127.0.0.1 and ::1, raw sockets (root).
 *
 * The wall clock is stepped through an injected Clock whose realtimeNs() jumps by ±1 h: the
 * monotonic clock and the kernel's own stamps do not move. That is exactly what a real step looks
 * like for a packet stamped before the step and read after it (the stamp disagrees with "now" by
 * the step); a packet stamped after a real step agrees with "now" again, which is the unstepped
 * case these tests also cover.
 */
import { describe, expect, test } from "bun:test";
import { SYSTEM_CLOCK, type Clock } from "../lib/probes/icmp/clock.ts";
import { IcmpEngine } from "../lib/probes/icmp/engine.ts";
import { encodeSockaddr } from "../lib/probes/icmp/libc.ts";
import { ICMP_ECHO_REPLY, writeEchoRequest } from "../lib/probes/icmp/packet.ts";
import { IcmpSocket } from "../lib/probes/icmp/socket.ts";
import { IS_ROOT } from "./helpers/procs.ts";

const HOUR_NS = 3600e9;

/** The system's clocks, except that the wall clock jumps by `stepNs` once `when()` is true. */
class SteppedClock implements Clock {
  readonly realtimeOriginSec = SYSTEM_CLOCK.realtimeOriginSec;
  stepped = false;
  constructor(private readonly stepNs: number, private readonly when: () => boolean = () => true) {}
  monotonicNs(): number {
    this.check();
    return SYSTEM_CLOCK.monotonicNs();
  }
  realtimeNs(): number {
    this.check();
    return SYSTEM_CLOCK.realtimeNs() + (this.stepped ? this.stepNs : 0);
  }
  private check(): void {
    if (!this.stepped && this.when()) this.stepped = true;
  }
}

describe.skipIf(!IS_ROOT)("wall-clock steps (raw sockets, root)", () => {
  for (const step of [HOUR_NS, -HOUR_NS]) {
    test(`wall clock stepped ${step > 0 ? "+" : "-"}1 h in the middle of a round: no false loss, every RTT positive and below the timeout`, async () => {
      const COUNT = 32;
      let engine: IcmpEngine | undefined;
      // Steps once half of the round's requests are out: the rest are sent, answered and read after it.
      const clock = new SteppedClock(step, () => (engine?.stats.sent ?? 0) >= COUNT / 2);
      engine = new IcmpEngine("raw", 1 << 20, clock);
      try {
        const o = await engine.echo("127.0.0.1", { count: COUNT, intervalMs: 5, payloadSize: 56, timeoutMs: 1000 });
        expect(clock.stepped).toBe(true);
        expect([o.sent, o.received, o.duplicates, o.corrupted, o.error]).toEqual([COUNT, COUNT, 0, 0, ""]);
        expect(engine.stats.late).toBe(0);
        // Not clamped to 0 (a forward step would make the reply look older than its request), not
        // an hour (a backward step would make it look an hour late, i.e. lost).
        for (const rtt of o.rttsSeconds) {
          expect(rtt).toBeGreaterThan(0);
          expect(rtt).toBeLessThan(1);
        }
        // The replies read after the step carried stamps that disagreed with the wall clock by the
        // step: they were timed by the monotonic clock at read instead.
        expect(engine.socket(false).rxStampsRejected).toBeGreaterThanOrEqual(1);
      } finally {
        engine.close();
      }
    });
  }

  /** Sends one echo request to 127.0.0.1 (then calls `afterSend`), lets the reply wait in the queue, then reads it. */
  const replyTimes = async (clock: Clock, afterSend = () => {}) => {
    const sock = new IcmpSocket(false, 1 << 20, "raw", "replies", clock);
    try {
      const token = crypto.getRandomValues(new Uint8Array(8));
      const packet = new Uint8Array(8 + 56);
      writeEchoRequest(packet, false, sock.identifier, 1, token);
      const sentNs = sock.send(packet, encodeSockaddr("127.0.0.1"));
      expect(sentNs).toBeGreaterThanOrEqual(0);
      afterSend();
      // Loopback answers within microseconds of sendto: the reply is queued long before the read.
      for (let i = 0; i < 100; i++) {
        await Bun.sleep(20);
        const readNs = clock.monotonicNs();
        let rxNs: number | undefined;
        sock.drain((d) => {
          const b = d.buf, at = d.icmpOffset;
          if (b[at] === ICMP_ECHO_REPLY && ((b[at + 4]! << 8) | b[at + 5]!) === sock.identifier) rxNs = d.rxNs;
        });
        if (rxNs !== undefined) return { sentNs, readNs, rxNs, rejected: sock.rxStampsRejected };
      }
      throw new Error("no echo reply from 127.0.0.1");
    } finally {
      sock.close();
    }
  };

  test("a reply that waited in the queue is timed at its arrival (the kernel stamp), not at its read", async () => {
    const t = await replyTimes(SYSTEM_CLOCK);
    expect(t.rxNs).toBeGreaterThan(t.sentNs);
    expect(t.rxNs).toBeLessThan(t.readNs); // arrived before the ≥ 20 ms wait ended
  });

  for (const step of [HOUR_NS, -HOUR_NS]) {
    test(`a stamp taken before a ${step > 0 ? "+" : "-"}1 h wall-clock step and read after it is not used: the reply is timed at its read`, async () => {
      // The wall clock steps once the request is out; its reply is stamped before the step.
      let sent = false;
      const clock = new SteppedClock(step, () => sent);
      const t = await replyTimes(clock, () => (sent = true));
      expect(clock.stepped).toBe(true);
      expect(t.rejected).toBeGreaterThanOrEqual(1);
      expect(t.rxNs).toBeGreaterThanOrEqual(t.readNs); // timed at its read: after the wait, never an hour off
      expect(t.rxNs - t.sentNs).toBeLessThan(HOUR_NS / 2);
    });
  }

  test("an IPv6 socket opened seconds after the IPv4 one shares its time base: requests stay `interval` apart", async () => {
    const e = new IcmpEngine("raw");
    try {
      e.socket(false);
      // Each socket used to count from the wall-clock second it was opened in: a later IPv6 socket
      // ran seconds behind the engine's clock, so its requests were all "due" at once and its
      // deadlines had passed before its first reply could arrive.
      await Bun.sleep(1100);
      const COUNT = 6, INTERVAL_MS = 100;
      const start = performance.now();
      const o = await e.echo("::1", { count: COUNT, intervalMs: INTERVAL_MS, payloadSize: 56, timeoutMs: 1000 });
      const tookMs = performance.now() - start;
      expect([o.sent, o.received]).toEqual([COUNT, COUNT]);
      // A lower bound only: requests are never closer than half an interval (engine.ts).
      expect(tookMs).toBeGreaterThanOrEqual(((COUNT - 1) * INTERVAL_MS) / 2);
    } finally {
      e.close();
    }
  });
});
