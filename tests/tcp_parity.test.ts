/**
 * Verdict parity with blackbox_exporter itself: the same tcp modules against the same local
 * servers (tests/helpers/tcp_servers.ts), probed by prometheus-blackbox-exporter (Debian's
 * package; CI installs it) on 127.0.0.1 and by the TCP prober. Each case must end the same way
 * (probe_success), and where blackbox says why (probe_failed_due_to_regex, probe_tls_version_info)
 * ProberMesh must say the same. Skipped without the binary.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn, type Subprocess } from "bun";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { makeCerts, type TestCerts } from "./helpers/certs.ts";
import { freePort, skipReason } from "./helpers/procs.ts";
import { probeTcp, reasonOf, closeAfter, irc, silent, smtp, startTcpServer, type ServerConn, type TcpTestServer } from "./helpers/tcp_servers.ts";

const BLACKBOX = "/usr/bin/prometheus-blackbox-exporter";
const available = existsSync(BLACKBOX);
if (!available) skipReason(`tcp_parity needs ${BLACKBOX} (apt-get install prometheus-blackbox-exporter)`);

/** Module bodies (the lines under `tcp:`); @CA@ is replaced by the test CA's path. */
const MODULES: Record<string, string> = {
  smtp_starttls: `query_response:
  - expect: "^220 ([^ ]+) ESMTP (.+)$"
  - send: "EHLO prober\\r"
  - expect: "^250-STARTTLS"
  - send: "STARTTLS\\r"
  - expect: "^220"
  - starttls: true
  - send: "EHLO prober\\r"
  - expect: "^250-AUTH"
  - send: "QUIT\\r"
tls_config: {ca_file: "@CA@"}`,
  smtp_untrusted: `query_response: [{expect: "^220"}, {send: "STARTTLS\\r"}, {expect: "^220"}, {starttls: true}]`,
  irc: `query_response:
  - send: "NICK prober"
  - send: "USER prober prober prober :prober"
  - expect: "PING :([^ ]+)"
    send: "PONG \${1}"
  - expect: "^:[^ ]+ 001"`,
  irc_no_group: `query_response: [{send: "NICK p"}, {send: "USER p p p :p"}, {expect: "PING"}, {send: "PONG x"}, {expect: "^:[^ ]+ 001"}]`,
  pop_assertion: `query_response: [{expect: "^+OK"}]`,
  half_open: `query_response: [{expect: "^220"}, {send: "QUIT"}]`,
  mtls13_no_read: `tls: true\ntls_config: {ca_file: "@CA@"}`,
  mtls13_read: `tls: true\ntls_config: {ca_file: "@CA@"}\nquery_response: [{expect: "^hello"}]`,
  silent: `timeout: 1s\nquery_response: [{expect: "^never"}]`,
};

describe.skipIf(!available)("tcp verdicts match blackbox_exporter's", () => {
  let certs: TestCerts;
  let bb: Subprocess;
  let bbUrl = "";
  const servers: Record<string, TcpTestServer> = {};

  beforeAll(async () => {
    certs = await makeCerts();
    const tlsO = { key: readFileSync(certs.serverKey), cert: readFileSync(certs.serverCert) };
    const demand = { ...tlsO, ca: readFileSync(certs.caFile), requestCert: true, rejectUnauthorized: true };
    const hello = (c: ServerConn) => c.send("hello");
    Object.assign(servers, {
      smtp_starttls: await startTcpServer(smtp(tlsO)),
      smtp_untrusted: await startTcpServer(smtp(tlsO)),
      irc: await startTcpServer(irc("tok42")),
      irc_no_group: await startTcpServer(irc("tok42")),
      pop_assertion: await startTcpServer(closeAfter("+OK POP3 ready")),
      half_open: await startTcpServer(async (c: ServerConn) => {
        c.end("220 hi");
        await c.line();
      }),
      mtls13_no_read: await startTcpServer(hello, { tls: demand }),
      mtls13_read: await startTcpServer(hello, { tls: demand }),
      silent: await startTcpServer(silent()),
    });
    // blackbox's module-level timeout sits beside tcp:, and its default family is ip6.
    const yaml = Object.entries(MODULES).map(([name, body]) => {
      const timeout = /^timeout: (\S+)\n/.exec(body)?.[1] ?? "5s";
      const tcp = body.replace(/^timeout: \S+\n/, "").replaceAll("@CA@", certs.caFile);
      return `  ${name}:\n    prober: tcp\n    timeout: ${timeout}\n    tcp:\n      preferred_ip_protocol: ip4\n${tcp.replace(/^/gm, "      ")}`;
    });
    const dir = mkdtempSync(`${tmpdir()}/pm-bb-`);
    writeFileSync(`${dir}/blackbox.yml`, `modules:\n${yaml.join("\n")}\n`);
    const port = await freePort();
    bbUrl = `http://127.0.0.1:${port}`;
    bb = spawn([BLACKBOX, `--config.file=${dir}/blackbox.yml`, `--web.listen-address=127.0.0.1:${port}`], { stdout: "ignore", stderr: "pipe" });
    for (;;) {
      if (bb.exitCode !== null) throw new Error(`blackbox exited: ${await new Response(bb.stderr as ReadableStream).text()}`);
      if (await fetch(`${bbUrl}/-/healthy`).then((r) => r.ok, () => false)) break;
      await Bun.sleep(50);
    }
  });

  afterAll(async () => {
    bb?.kill();
    await Promise.all(Object.values(servers).map((s) => s.close()));
  });

  for (const name of Object.keys(MODULES)) {
    test(name, async () => {
      const target = servers[name]!.target;
      const text = await (await fetch(`${bbUrl}/probe?module=${name}&target=${target}`)).text();
      const gauge = (metric: string) => /^(\S+) (\S+)$/m.exec(text.split("\n").filter((l) => l.startsWith(metric)).join("\n"));
      const bbSuccess = gauge("probe_success ")?.[2] === "1";
      const bbRegex = gauge("probe_failed_due_to_regex ")?.[2] === "1";
      const bbTls = /^probe_tls_version_info\{version="([^"]+)"\} 1$/m.exec(text)?.[1] ?? "";
      const r = await probeTcp(target, MODULES[name]!.replaceAll("@CA@", certs.caFile));
      expect({ success: r.success, regex: reasonOf(r) === "expect", tls: r.tlsVersion, error: r.error })
        .toEqual({ success: bbSuccess, regex: bbRegex, tls: bbTls, error: expect.any(String) });
    });
  }
});
