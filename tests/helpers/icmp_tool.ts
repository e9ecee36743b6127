/**
 * A small ICMP tool for the fault beds, run inside a test namespace with `ip netns exec NS bun
 * tests/helpers/icmp_tool.ts MODE ...` (needs root: a raw socket). It uses the project's socket
 * code, so the beds need no ping or tcpdump.
 *
 * - `ping TIMEOUT_MS IP...`: one echo request to each IPv4 address every 100 ms until every one
 *   answered or the timeout ran out; prints `{"answered":[...],"missing":[...]}`, exit 0 when none
 *   is missing, 1 otherwise.
 * - `capture FILE`: records every echo request arriving in this namespace (the kernel still
 *   answers them): one JSON line per request `{"src":"10.241.1.11","id":1234,"seq":5,"ms":...}`,
 *   `ms` the kernel receive time in unix milliseconds (fractional). Prints "ready" once listening;
 *   on SIGTERM flushes and exits 0.
 */
import { appendFileSync, writeFileSync } from "node:fs";
import { ipv4Bytes, sockaddrOf } from "../../lib/probes/icmp/libc.ts";
import { ICMP_ECHO_REPLY, writeEchoRequest } from "../../lib/probes/icmp/packet.ts";
import { IcmpSocket, datagramSource } from "../../lib/probes/icmp/socket.ts";

const [mode, ...args] = process.argv.slice(2);

if (mode === "ping") {
  const timeoutMs = Number(args[0]);
  const targets = args.slice(1);
  const sock = new IcmpSocket(false, 1 << 20, "raw", "replies");
  const token = new Uint8Array(8);
  crypto.getRandomValues(token);
  const missing = new Set(targets);
  const packet = new Uint8Array(8 + 16);
  const end = Date.now() + timeoutMs;
  let seq = 0;
  while (missing.size > 0 && Date.now() < end) {
    for (const ip of missing) {
      writeEchoRequest(packet, false, sock.identifier, ++seq & 0xffff, token);
      sock.send(packet, sockaddrOf(ipv4Bytes(ip)));
    }
    await Bun.sleep(100);
    sock.drain((d) => {
      if (d.buf[d.icmpOffset] !== ICMP_ECHO_REPLY) return;
      if (((d.buf[d.icmpOffset + 4]! << 8) | d.buf[d.icmpOffset + 5]!) !== sock.identifier) return;
      missing.delete([...datagramSource(d, false)].join("."));
    });
  }
  sock.close();
  console.log(JSON.stringify({ answered: targets.filter((t) => !missing.has(t)), missing: [...missing] }));
  process.exit(missing.size === 0 ? 0 : 1);
} else if (mode === "capture") {
  const file = args[0]!;
  writeFileSync(file, "");
  const sock = new IcmpSocket(false, 4 << 20, "raw", "requests");
  let lines: string[] = [];
  const flush = () => {
    if (lines.length) appendFileSync(file, lines.join("\n") + "\n");
    lines = [];
  };
  const read = () =>
    sock.drain((d) => {
      const b = d.buf, o = d.icmpOffset;
      lines.push(JSON.stringify({
        src: [...datagramSource(d, false)].join("."),
        id: (b[o + 4]! << 8) | b[o + 5]!,
        seq: (b[o + 6]! << 8) | b[o + 7]!,
        ms: sock.epochSec * 1000 + d.rxNs / 1e6,
      }));
    });
  const timer = setInterval(() => {
    read();
    if (lines.length > 200) flush();
  }, 1);
  const flusher = setInterval(flush, 200);
  process.on("SIGTERM", () => {
    clearInterval(timer);
    clearInterval(flusher);
    read();
    flush();
    sock.close();
    process.exit(0);
  });
  console.log("ready");
} else {
  process.stderr.write("usage: icmp_tool.ts ping TIMEOUT_MS IP... | capture FILE\n");
  process.exit(2);
}
