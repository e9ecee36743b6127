/**
 * The tcp kind's connect probe over flows (TcpModule.flows, lib/probes/tcp/flows.ts) on loopback:
 * each flow from its own source port (seen by a listener that records accept()'s peer address),
 * kernel-measured connect times, a second round from the same ports (no TIME_WAIT), refused
 * connects, a flow port held by another socket (EADDRINUSE), abort, and the probe file's `flows`
 * key. Packet drops in a namespace pair are in tests/tcp_flows_netns.test.ts.
 *
 * Flow port ranges here are 473xx, away from the agent's defaults, so concurrent tests do not
 * collide on them.
 */
import { afterAll, describe, expect, test } from "bun:test";
import net from "node:net";
import { $ } from "bun";
import { dlopen, FFIType } from "bun:ffi";
import { create } from "@bufbuild/protobuf";
import { TcpTargetSchema, type TcpModule, type TcpResult } from "../lib/rpc/gen/probermesh/v1/tcp_pb.ts";
import { AF_INET, AF_INET6, IPPROTO_TCP, SOCK_NONBLOCK, SOCK_STREAM, libc } from "../lib/probes/icmp/libc.ts";
import { sockaddrWithPort, TCPI_RTT, TCPI_TOTAL_RETRANS } from "../lib/probes/tcp/flow_socket.ts";
import { TCP_FLOW_PORTS } from "../lib/probes/tcp/defaults.ts";
import { tcpKind } from "../lib/probes/tcp/kind.ts";
import { TcpProber } from "../lib/probes/tcp/prober.ts";
import { portList } from "../lib/probes/tcp/flows.ts";
import { parsePortRange } from "../lib/probes/flow/ports.ts";
import { freePort } from "./helpers/procs.ts";

/** listen(2) and accept4(2): not in libc.ts, which the probes do not need them from. */
const sys = dlopen("libc.so.6", {
  listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  accept4: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  getsockname: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
}).symbols;

/**
 * A listener that records the peer port of every connection it accepts. accept() reports the peer
 * address even of a connection the peer has already reset (node and Bun ask getpeername() later,
 * which fails then), so it sees every flow of a connect probe.
 */
class PortRecorder {
  readonly fd: number;
  readonly port: number;
  constructor(readonly ip: string) {
    this.fd = libc.socket(ip.includes(":") ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK, IPPROTO_TCP);
    const sa = sockaddrWithPort(ip, 0);
    if (this.fd < 0 || libc.bind(this.fd, sa, sa.length) !== 0 || sys.listen(this.fd, 1024) !== 0) throw new Error("listener setup failed");
    const len = new Uint32Array([sa.length]);
    sys.getsockname(this.fd, sa, len);
    this.port = new DataView(sa.buffer).getUint16(2, false);
  }
  /** The peer ports of the connections queued since the last call, ascending. */
  accepted(): number[] {
    const ports: number[] = [];
    for (;;) {
      const sa = new Uint8Array(28);
      const len = new Uint32Array([28]);
      const c = sys.accept4(this.fd, sa, len, 0);
      if (c < 0) break;
      ports.push(new DataView(sa.buffer).getUint16(2, false));
      libc.close(c);
    }
    return ports.sort((a, b) => a - b);
  }
  get target(): string {
    return this.ip.includes(":") ? `[${this.ip}]:${this.port}` : `${this.ip}:${this.port}`;
  }
  close(): void {
    libc.close(this.fd);
  }
}

const recorders: PortRecorder[] = [];
afterAll(() => recorders.forEach((r) => r.close()));
const recorder = (ip: string) => {
  const r = new PortRecorder(ip);
  recorders.push(r);
  return r;
};

const moduleOf = (keys: Record<string, unknown>): TcpModule => tcpKind.moduleSchema("/").parse(keys);
const probe = (p: TcpProber, address: string, m: TcpModule, signal?: AbortSignal): Promise<TcpResult> =>
  p.probe(create(TcpTargetSchema, { targetRegion: "r", address, module: m }), signal);
const range = (s: string) => parsePortRange(s);

/** TCP sockets in TIME-WAIT from a local port in [first, last] to `dport` (ss, both families). */
async function timeWaits(first: number, last: number, dport: number): Promise<number> {
  const out = await $`ss -tanH state time-wait ${`( sport >= :${first} and sport <= :${last} and dport = :${dport} )`}`.quiet().text();
  return out.split("\n").filter((l) => l.trim()).length;
}

describe("connect probe over flows (loopback)", () => {
  for (const ip of ["127.0.0.1", "::1"]) {
    test(`${ip}: one connection per flow port, kernel-timed, and a second round from the same ports (no TIME_WAIT)`, async () => {
      const l = recorder(ip);
      const p = new TcpProber({ flowPorts: range("29300-29315") });
      const m = moduleOf({ flows: 8, timeout: "5s" });
      // Below the ephemeral range (32768-60999): no outgoing connection of another process holds them.
      const ports = [29300, 29301, 29302, 29303, 29304, 29305, 29306, 29307];
      for (let round = 0; round < 2; round++) {
        const r = await probe(p, l.target, m);
        expect([r.success, r.failedReason, r.error]).toEqual([true, "", ""]);
        expect(r.flows.map((f) => [f.sourcePort, f.sent, f.received])).toEqual(ports.map((port) => [port, 1, 1]));
        for (const f of r.flows) {
          // TCP_INFO's tcpi_rtt is whole microseconds: a kernel sample, not a poll-timer reading.
          expect(f.rttMeanSeconds).toBeGreaterThan(0);
          expect(Number.isInteger(Math.round(f.rttMeanSeconds * 1e9) / 1000)).toBe(true);
          expect([f.rttMinSeconds, f.rttMaxSeconds]).toEqual([f.rttMeanSeconds, f.rttMeanSeconds]);
          expect(f.rttMeanSeconds).toBeLessThanOrEqual(r.durationSeconds);
        }
        const mean = r.flows.reduce((s, f) => s + f.rttMeanSeconds, 0) / r.flows.length;
        expect(r.connectSeconds).toBeCloseTo(mean, 9);
        expect(l.accepted()).toEqual(ports);
        expect(await timeWaits(29300, 29315, l.port)).toBe(0);
      }
    });
  }

  test("a closed port: every flow sent and not received, failed_reason connect naming the ports", async () => {
    const port = await freePort();
    const r = await probe(new TcpProber({ flowPorts: range("29320-29323") }), `127.0.0.1:${port}`, moduleOf({ flows: 4 }));
    expect([r.success, r.failedReason]).toEqual([false, "connect"]);
    expect(r.flows.map((f) => [f.sourcePort, f.sent, f.received, f.rttMeanSeconds])).toEqual([29320, 29321, 29322, 29323].map((p) => [p, 1, 0, 0]));
    expect(r.error).toBe("source ports 29320-29323: connection refused (RST)");
    expect(r.connectSeconds).toBe(0);
  });

  test("a flow port held by a listener: that flow not sent, the error names the port and why, the others connect", async () => {
    const l = recorder("127.0.0.1");
    const holder = net.createServer();
    await new Promise<void>((ok) => holder.listen(29332, "0.0.0.0", ok));
    try {
      const r = await probe(new TcpProber({ flowPorts: range("29330-29333") }), l.target, moduleOf({ flows: 4 }));
      expect([r.success, r.failedReason]).toEqual([false, "connect"]);
      expect(r.flows.map((f) => [f.sourcePort, f.sent, f.received])).toEqual([[29330, 1, 1], [29331, 1, 1], [29332, 0, 0], [29333, 1, 1]]);
      expect(r.error).toMatch(/^source port 29332: bind: .*errno 98/);
      expect(r.connectSeconds).toBeGreaterThan(0);
      expect(l.accepted()).toEqual([29330, 29331, 29333]);
    } finally {
      await new Promise((ok) => holder.close(ok));
    }
  });

  test("the error lists failed ports with runs of three or more as ranges", () => {
    expect(portList([40200, 40201, 40202, 40203, 40205, 40206, 40208])).toBe("40200-40203, 40205, 40206, 40208");
    expect(portList([])).toBe("");
  });

  test("flows above the range's size use the whole range; the default range is TCP_FLOW_PORTS", async () => {
    const l = recorder("127.0.0.1");
    const r = await probe(new TcpProber({ flowPorts: range("29340-29342") }), l.target, moduleOf({ flows: 16 }));
    expect(r.success).toBe(true);
    expect(r.flows.map((f) => f.sourcePort)).toEqual([29340, 29341, 29342]);
    expect(new TcpProber().flowPorts).toEqual(parsePortRange(TCP_FLOW_PORTS));
  });

  test("aborted before it starts: failed_reason timeout, no flow sent", async () => {
    const ac = new AbortController();
    ac.abort();
    const r = await probe(new TcpProber({ flowPorts: range("29350-29351") }), "127.0.0.1:9", moduleOf({ flows: 2 }), ac.signal);
    expect([r.success, r.failedReason, r.flows.length]).toEqual([false, "timeout", 0]);
  });

  test("flows: 0 keeps blackbox's probe: one connection from a kernel-chosen port, no flows in the result", async () => {
    const l = recorder("127.0.0.1");
    const r = await probe(new TcpProber({ flowPorts: range("29360-29361") }), l.target, moduleOf({}));
    expect([r.success, r.flows.length]).toEqual([true, 0]);
    const peers = l.accepted();
    expect(peers).toHaveLength(1);
    expect(peers[0]).not.toBe(29360);
  });
});

describe("the probe file's flows key", () => {
  test("0 by default, 1..1024 accepted, others refused", () => {
    expect(moduleOf({}).flows).toBe(0);
    expect(moduleOf({ flows: 1024, source_ip_address: "127.0.0.1" }).flows).toBe(1024);
    for (const flows of [-1, 1025, 1.5, "8"]) expect(tcpKind.moduleSchema("/").safeParse({ flows }).success).toBe(false);
  });

  test("tls, tls_config and query_response are refused with flows, naming the key", () => {
    const cases: [string, Record<string, unknown>][] = [
      ["tls", { tls: true }],
      ["tls_config", { tls_config: { insecure_skip_verify: true } }],
      ["query_response", { query_response: [{ send: "x" }] }],
    ];
    for (const [key, keys] of cases) {
      const issues = tcpKind.moduleSchema("/").safeParse({ flows: 4, ...keys }).error?.issues ?? [];
      expect(issues.map((i) => [i.path.join("."), /does not apply with flows/.test(i.message)])).toEqual([[key, true]]);
      expect(tcpKind.moduleSchema("/").safeParse(keys).success).toBe(true);
    }
    expect(tcpKind.moduleSchema("/").safeParse({ flows: 4, tls: false, query_response: [] }).success).toBe(true);
  });
});

test("struct tcp_info offsets are those of linux/tcp.h", async () => {
  // Checked against the header when it is installed (linux-libc-dev); the netns test checks the
  // values on packets.
  const h = Bun.file("/usr/include/linux/tcp.h");
  if (!(await h.exists())) return console.log("[skip] no /usr/include/linux/tcp.h");
  const text = await h.text();
  const body = /struct tcp_info \{([\s\S]*?)\};/.exec(text)![1]!;
  let off = 0;
  const at: Record<string, number> = {};
  for (const m of body.matchAll(/__u(8|32|64)\s+([^;]+);/g)) {
    const size = Number(m[1]) / 8;
    off = Math.ceil(off / size) * size;
    const names = m[2]!.split(",").map((n) => n.trim().split(/\s*:/)[0]!);
    for (const n of names) at[n] = off;
    if (!m[2]!.includes(":")) off += size * names.length;
    else off += size; // bit-fields of one u8
  }
  expect([at.tcpi_rtt, at.tcpi_total_retrans]).toEqual([TCPI_RTT, TCPI_TOTAL_RETRANS]);
});
