/**
 * The TCP prober against real local servers (tests/helpers/tcp_servers.ts): connect, refused,
 * timeout, the query_response dialogue (expect / send with capture groups, expect_bytes, line
 * limits), source_ip_address, IPv6, address-family preference (and a resolve failure, from
 * /etc/hosts: no DNS query leaves the machine) and abort. TLS is in tests/tcp_tls.test.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { lookup } from "node:dns/promises";
import { Conn } from "../lib/probes/tcp/conn.ts";
import { outcome, probeTcp, reasonOf, closedPort, banner, closeAfter, irc, silent, startTcpServer, type ServerConn, type TcpTestServer } from "./helpers/tcp_servers.ts";

const servers: TcpTestServer[] = [];
const serve = async (...a: Parameters<typeof startTcpServer>) => {
  const s = await startTcpServer(...a);
  servers.push(s);
  return s;
};
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

describe("connect", () => {
  test("a listening port: success, connect timed, no TLS", async () => {
    const s = await serve(banner("SSH-2.0-test"));
    const r = await probeTcp(s.target);
    expect(outcome(r)).toEqual({ reason: "ok", error: "" });
    expect([r.address, r.targetRegion, r.tlsSeconds, r.tlsVersion, r.sslEarliestCertExpiry, r.resolveSeconds]).toEqual([s.target, "r", 0, "", 0n, 0]);
    expect(r.connectSeconds).toBeGreaterThan(0);
    expect(r.durationSeconds).toBeGreaterThanOrEqual(r.connectSeconds);
    expect(s.peers).toEqual(["127.0.0.1"]);
  });

  test("a closed port: connect, refused", async () => {
    const r = await probeTcp(`127.0.0.1:${await closedPort()}`);
    expect(reasonOf(r)).toBe("connect");
    expect(r.error).toContain("ECONNREFUSED");
    expect(r.connectSeconds).toBe(0);
  });

});

describe("query_response", () => {
  test("expect matches a banner line; a line that never comes is timeout, the connection closing first is expect", async () => {
    const ssh = await serve(banner("SSH-2.0-OpenSSH_9.6"));
    expect(outcome(await probeTcp(ssh.target, 'query_response: [{expect: "^SSH-2.0-"}]'))).toEqual({ reason: "ok", error: "" });

    const quiet = await serve(silent());
    const t = await probeTcp(quiet.target, 'timeout: 1s\nquery_response: [{expect: "^SSH-2.0-"}]');
    expect(outcome(t)).toEqual({ reason: "timeout", error: 'timed out waiting for a line matching expect "^SSH-2.0-" (query_response[0])' });
    expect(t.connectSeconds).toBeGreaterThan(0); // the phase completed before the timeout is kept

    const closing = await serve(closeAfter("220 not ssh"));
    expect(outcome(await probeTcp(closing.target, 'query_response: [{expect: "^SSH-2.0-"}]'))).toEqual({
      reason: "expect", error: 'query_response[0]: connection closed before a line matched expect "^SSH-2.0-" (last line "220 not ssh")',
    });
  });

  test("IRC registration: send lines, expect with a capture group, ${1} in send (blackbox's irc_banner)", async () => {
    const token = `tok${Math.random().toString(36).slice(2, 10)}`;
    const s = await serve(irc(token));
    const steps = (pong: string) => `query_response:\n  - send: "NICK prober"\n  - send: "USER prober prober prober :prober"\n  - expect: "PING :([^ ]+)"\n    send: "${pong}"\n  - expect: "^:[^ ]+ 001"`;
    expect(outcome(await probeTcp(s.target, steps("PONG ${1}")))).toEqual({ reason: "ok", error: "" });
    expect(s.transcript).toEqual(["NICK prober", "USER prober prober prober :prober", `PONG ${token}`]);
    // Named group, Go's (?P<name>) syntax
    expect(reasonOf(await probeTcp(s.target, steps("PONG ${tok}").replace("PING :([^ ]+)", "PING :(?P<tok>[^ ]+)")))).toBe("ok");
    // Without the group the server refuses the PONG and closes: expect fails on the next step
    const r = await probeTcp(s.target, steps("PONG nothing"));
    expect(outcome(r)).toEqual({ reason: "expect", error: 'query_response[3]: connection closed before a line matched expect "^:[^ ]+ 001" (last line ":irc.test 464 * :Bad PONG")' });
  });

  test("expect_bytes: the exact bytes pass, other bytes or too few fail (expect_bytes)", async () => {
    const s = await serve((c: ServerConn) => c.end("+OK\u00e9"));
    expect(reasonOf(await probeTcp(s.target, 'query_response: [{expect_bytes: "+OK\u00e9"}]'))).toBe("ok");
    const other = await probeTcp(s.target, 'query_response: [{expect_bytes: "-ERR"}]');
    expect(outcome(other)).toEqual({ reason: "expect_bytes", error: "query_response[0]: read 2b4f4bc3, expect_bytes is 2d455252 (hex)" });
    const short = await probeTcp(s.target, 'query_response: [{expect_bytes: "+OK\u00e9\\r\\nmore"}]');
    expect(outcome(short)).toEqual({ reason: "expect_bytes", error: "query_response[0]: connection closed after 7 of the 11 bytes of expect_bytes (read 2b4f4bc3a90d0a)" });
  });

  test("expect_bytes longer than what is buffered ahead (256 KiB) is read in full", async () => {
    const big = "a".repeat(300 * 1024);
    const s = await serve(async (c: ServerConn) => {
      // In pieces, so that the prober pauses the socket at 256 KiB before the rest has come.
      for (let i = 0; i < big.length; i += 32 * 1024) {
        c.send(Buffer.from(big.slice(i, i + 32 * 1024)));
        await Bun.sleep(1);
      }
      c.end();
    });
    expect(reasonOf(await probeTcp(s.target, `timeout: 5s\nquery_response: [{expect_bytes: "${big}"}]`))).toBe("ok");
    expect(reasonOf(await probeTcp(s.target, `query_response: [{expect_bytes: "${big}b"}]`))).toBe("expect_bytes");
  });

  test("a send after the server's last line and FIN still goes out, as with Go's half-open net.Conn", async () => {
    const s = await serve(async (c: ServerConn) => {
      c.end("220 hi"); // FIN right after the line; the server still reads
      await c.line();
    });
    expect(outcome(await probeTcp(s.target, 'query_response: [{expect: "^220"}, {send: "QUIT"}]'))).toEqual({ reason: "ok", error: "" });
    // The same on a connection that has certainly seen the FIN before it writes (readBytes returns short only at the end of the stream).
    const conn = await Conn.open("127.0.0.1", s.port, undefined, performance.now() + 5000);
    try {
      expect((await conn.readBytes(100, "reading")).toString()).toBe("220 hi\r\n");
      await conn.write(Buffer.from("QUIT\n"), "sending");
    } finally {
      conn.close();
    }
    while (s.transcript.length < 2) await Bun.sleep(5);
    expect(s.transcript).toEqual(["QUIT", "QUIT"]);
  });

  test("a line longer than 64 KiB fails (io), as Go's bufio.Scanner does; a line that fits passes", async () => {
    const s = await serve((c: ServerConn) => c.end("x".repeat(70_000)));
    const r = await probeTcp(s.target, 'query_response: [{expect: "y"}]');
    expect(outcome(r)).toEqual({ reason: "io", error: 'waiting for a line matching expect "y" (query_response[0]): line longer than 65536 bytes' });
    const terminated = await serve((c: ServerConn) => c.end(`${"x".repeat(65_535)}y`)); // 65536 + "\r\n"
    expect(reasonOf(await probeTcp(terminated.target, 'query_response: [{expect: "y"}]'))).toBe("io");
    const ok = await serve((c: ServerConn) => c.end(`${"x".repeat(65_532)}y`)); // 65533 + "\r\n": fits
    expect(reasonOf(await probeTcp(ok.target, 'query_response: [{expect: "^x+y$"}]'))).toBe("ok");
  });
});

describe("addresses", () => {
  test("source_ip_address: the server sees the bound address as the peer", async () => {
    const s = await serve(banner("hello"));
    expect(reasonOf(await probeTcp(s.target, "source_ip_address: 127.0.0.2"))).toBe("ok");
    expect(reasonOf(await probeTcp(s.target))).toBe("ok");
    expect(s.peers).toEqual(["127.0.0.2", "127.0.0.1"]);
    const v6 = await probeTcp(s.target, 'source_ip_address: "::1"');
    expect(outcome(v6)).toEqual({ reason: "connect", error: "source_ip_address ::1 is not of the address family of 127.0.0.1" });
    expect(reasonOf(await probeTcp(s.target, "source_ip_address: 192.0.2.1"))).toBe("connect"); // not local: bind fails, nothing is sent
    expect(s.peers).toHaveLength(2);
  });

  test("IPv6: [::1]:port", async () => {
    const s = await serve(banner("SSH-2.0-v6"), { host: "::1" });
    expect(s.target).toMatch(/^\[::1\]:\d+$/);
    expect(outcome(await probeTcp(s.target, 'query_response: [{expect: "^SSH-2.0-v6$"}]'))).toEqual({ reason: "ok", error: "" });
    expect(s.peers).toEqual(["::1"]);
  });

  test("preferred_ip_protocol / ip_protocol_fallback choose the family of localhost's addresses", async () => {
    const v6 = await serve(banner("v6"), { host: "::1" });
    // An IPv4 listener on the same port: either family reaches a server, and the one reached tells the family.
    const v4 = await serve(banner("v4"), { host: "127.0.0.1", port: v6.port });
    const families = new Set((await lookup("localhost", { all: true })).map((a) => a.family));
    const reached = async (yaml: string) => {
      const [a, b] = [v4.peers.length, v6.peers.length];
      const r = await probeTcp(`localhost:${v6.port}`, yaml);
      return !r.success ? r.failedReason : v6.peers.length > b ? "v6" : v4.peers.length > a ? "v4" : "none";
    };
    expect(await reached("preferred_ip_protocol: ip4")).toBe(families.has(4) ? "v4" : "v6");
    if (families.has(6)) expect(await reached("preferred_ip_protocol: ip6")).toBe("v6");
    else {
      // /etc/hosts without ::1 localhost: ip6 falls back to IPv4, or fails to resolve without fallback
      expect(await reached("preferred_ip_protocol: ip6")).toBe("v4");
      expect(await reached("preferred_ip_protocol: ip6\nip_protocol_fallback: false")).toBe("resolve");
    }
  });
});

describe("abort", () => {
  test("the signal ends a probe waiting on a silent server: timeout, aborted, and the connection is closed", async () => {
    let closed!: () => void;
    const gone = new Promise<void>((r) => (closed = r));
    const s = await serve((c: ServerConn) => void c.sock.on("close", closed));
    const ac = new AbortController();
    const pending = probeTcp(s.target, 'timeout: 60s\nquery_response: [{expect: "never"}]', ac.signal);
    while (s.peers.length === 0) await Bun.sleep(5);
    ac.abort();
    const r = await pending;
    expect(outcome(r)).toEqual({ reason: "timeout", error: 'aborted waiting for a line matching expect "never" (query_response[0])' });
    await gone; // the server saw the connection end
    const before = new AbortController();
    before.abort();
    expect(outcome(await probeTcp(s.target, "", before.signal))).toEqual({ reason: "timeout", error: "aborted before the probe started" });
  });
});
