/**
 * blackbox_exporter's query_response dialogue (prober/query_response.go), step by step on a
 * Conn. Within a step, in this order:
 *
 *   expect        read lines until one matches the RE2 regexp; the connection closing first
 *                 fails the probe (expect). Its groups fill `send`'s $1 / ${1} / ${name}.
 *   expect_bytes  read exactly that many bytes and compare (expect_bytes).
 *   send          write it followed by "\n" (blackbox's fmt.Fprintf(conn, "%s\n", send)).
 *   starttls      TLS handshake with tls_config (phase tls).
 *
 * Differences from blackbox, each on the side of reading what the peer sent: expect_bytes reads
 * from the same buffer as the lines (blackbox reads the connection directly, skipping what its
 * line scanner had read ahead) and waits for all its bytes (blackbox takes one read()).
 */
import type { TcpQueryResponse } from "../../rpc/gen/probermesh/v1/tcp_pb.ts";
import type { Conn } from "./conn.ts";
import { ProbeFailure } from "./failed_reason.ts";
import { expandTemplate, goRegexp } from "../regexp.ts";

/** How much of a line or a byte string an error message quotes. */
const QUOTE_MAX = 120;

const quote = (s: string) => JSON.stringify(s.length > QUOTE_MAX ? `${s.slice(0, QUOTE_MAX)}…` : s);
const hexOf = (b: Uint8Array) => Buffer.from(b.subarray(0, QUOTE_MAX / 2)).toString("hex") + (b.length > QUOTE_MAX / 2 ? "…" : "");

/**
 * Runs the steps on `conn`.
 * @param upgrade the TLS handshake of a starttls step (the prober times it and keeps its facts)
 * @throws ProbeFailure expect, expect_bytes, io, tls, timeout
 */
export async function runQueryResponse(conn: Conn, steps: readonly TcpQueryResponse[], upgrade: (step: string) => Promise<void>): Promise<void> {
  for (const [i, qr] of steps.entries()) {
    const step = `query_response[${i}]`;
    let send: Uint8Array = qr.send;
    if (qr.expect !== undefined) {
      const re = goRegexp(qr.expect);
      let last: string | undefined;
      for (;;) {
        const line = await conn.readLine(`waiting for a line matching expect ${quote(qr.expect)} (${step})`);
        if (line === null) {
          throw new ProbeFailure("expect", `${step}: connection closed before a line matched expect ${quote(qr.expect)}${last === undefined ? " (no line read)" : ` (last line ${quote(last)})`}`);
        }
        last = line;
        const m = re.exec(line);
        if (m) {
          if (send.length) send = expandTemplate(send, m);
          break;
        }
      }
    }
    if (qr.expectBytes.length) {
      const want = qr.expectBytes;
      const got = await conn.readBytes(want.length, `waiting for expect_bytes (${step})`);
      if (got.length < want.length) throw new ProbeFailure("expect_bytes", `${step}: connection closed after ${got.length} of the ${want.length} bytes of expect_bytes (read ${hexOf(got)})`);
      if (!Buffer.from(want).equals(got)) throw new ProbeFailure("expect_bytes", `${step}: read ${hexOf(got)}, expect_bytes is ${hexOf(want)} (hex)`);
    }
    if (send.length) await conn.write(Buffer.concat([send, Buffer.from("\n")]), `sending (${step})`);
    if (qr.starttls) await upgrade(step);
  }
}
