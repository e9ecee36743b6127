/**
 * TLS of the TCP prober against real local servers (tests/helpers/tcp_servers.ts) with throw-away
 * certificates (tests/helpers/certs.ts: a CA, a server certificate for localhost and 127.0.0.1,
 * client certificates): `tls: true` with ca_file / insecure_skip_verify / server_name, client
 * certificates, min/max version, STARTTLS in an SMTP dialogue (blackbox's smtp_starttls module),
 * PostgreSQL's SSLRequest (expect_bytes + starttls), and what a handshake reports.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type tls from "node:tls";
import { makeCerts, type TestCerts } from "./helpers/certs.ts";
import { outcome, probeTcp, reasonOf, banner, pgSsl, smtp, startTcpServer, type ServerConn, type ServerOptions, type TcpTestServer } from "./helpers/tcp_servers.ts";

let certs: TestCerts;
let serverTls: tls.TlsOptions;
const servers: TcpTestServer[] = [];
const serve = async (script: (c: ServerConn) => unknown, opts?: ServerOptions) => {
  const s = await startTcpServer(script, opts);
  servers.push(s);
  return s;
};
beforeAll(async () => {
  certs = await makeCerts();
  serverTls = { key: readFileSync(certs.serverKey), cert: readFileSync(certs.serverCert) };
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

/** NotAfter of a PEM certificate file, unix seconds. */
const notAfter = (file: string) => BigInt(Math.floor(Date.parse(new X509Certificate(readFileSync(file)).validTo) / 1000));
const hello = (c: ServerConn) => c.send("hello");

describe("tls: true", () => {
  test("with ca_file: success, TLS 1.3, the tls phase, and the earliest NotAfter of the verified chain", async () => {
    const s = await serve(hello, { tls: serverTls });
    const r = await probeTcp(s.target, `tls: true\ntls_config: {ca_file: "${certs.caFile}"}\nquery_response: [{expect: "^hello$"}]`);
    expect(outcome(r)).toEqual({ reason: "ok", error: "" });
    expect(r.tlsVersion).toBe("TLS 1.3");
    expect(r.tlsSeconds).toBeGreaterThan(0);
    const leaf = notAfter(certs.serverCert);
    const ca = notAfter(certs.caFile);
    expect(r.sslEarliestCertExpiry).toBe(leaf < ca ? leaf : ca);
  });

  test("insecure_skip_verify accepts an unknown CA; without it the handshake fails (tls); so does a plain server", async () => {
    const s = await serve(hello, { tls: serverTls });
    const insecure = await probeTcp(s.target, "tls: true\ntls_config: {insecure_skip_verify: true}");
    expect(outcome(insecure)).toEqual({ reason: "ok", error: "" });
    expect(insecure.sslEarliestCertExpiry).toBe(notAfter(certs.serverCert)); // the leaf: no chain was built
    const untrusted = await probeTcp(s.target, "tls: true");
    expect(reasonOf(untrusted)).toBe("tls");
    expect(untrusted.error).toMatch(/certificate|self.signed|issuer/i);
    expect([untrusted.tlsVersion, untrusted.sslEarliestCertExpiry]).toEqual(["", 0n]);
    const plain = await serve(banner("SSH-2.0-plain"));
    expect(reasonOf(await probeTcp(plain.target, "tls: true\ntls_config: {insecure_skip_verify: true}"))).toBe("tls");
  });

  test("server_name: the certificate is checked against it instead of the target's host", async () => {
    const s = await serve(hello, { tls: serverTls });
    const ca = `ca_file: "${certs.caFile}"`;
    expect(reasonOf(await probeTcp(s.target, `tls: true\ntls_config: {${ca}, server_name: localhost}`))).toBe("ok");
    const wrong = await probeTcp(s.target, `tls: true\ntls_config: {${ca}, server_name: other.test}`);
    expect(reasonOf(wrong)).toBe("tls");
    expect(wrong.error).toMatch(/other\.test/);
    expect(reasonOf(await probeTcp(`localhost:${s.port}`, `tls: true\ntls_config: {${ca}}`))).toBe("ok"); // by name
  });

  test("a server requiring a client certificate: cert_file/key_file pass; without, or with a stranger's, it fails (tls)", async () => {
    const demand = { ...serverTls, ca: readFileSync(certs.caFile), requestCert: true, rejectUnauthorized: true };
    const ca = `ca_file: "${certs.caFile}"`;
    const mine = `, cert_file: "${certs.clientCert}", key_file: "${certs.clientKey}"`;
    const stranger = `, cert_file: "${certs.otherClientCert}", key_file: "${certs.otherClientKey}"`;
    const read = `\nquery_response: [{expect: "^hello$"}]`;
    // TLS 1.2: the server refuses within the handshake.
    const s12 = await serve(hello, { tls: { ...demand, maxVersion: "TLSv1.2" } });
    expect(outcome(await probeTcp(s12.target, `tls: true\ntls_config: {${ca}${mine}}${read}`))).toEqual({ reason: "ok", error: "" });
    expect(reasonOf(await probeTcp(s12.target, `tls: true\ntls_config: {${ca}}`))).toBe("tls");
    expect(reasonOf(await probeTcp(s12.target, `tls: true\ntls_config: {${ca}${stranger}}`))).toBe("tls");
    // TLS 1.3: the server refuses after the client's side of the handshake is done, so the refusal
    // comes with the first read (as for blackbox: a module without query_response cannot see it).
    const s13 = await serve(hello, { tls: demand });
    expect(outcome(await probeTcp(s13.target, `tls: true\ntls_config: {${ca}${mine}}${read}`))).toEqual({ reason: "ok", error: "" });
    const without = await probeTcp(s13.target, `tls: true\ntls_config: {${ca}}${read}`);
    expect([reasonOf(without), without.error]).toEqual(["tls", expect.stringMatching(/CERTIFICATE_REQUIRED/i)]);
    // A stranger's certificate: this server closes without an alert; the read finds no line.
    expect(reasonOf(await probeTcp(s13.target, `tls: true\ntls_config: {${ca}${stranger}}${read}`))).not.toBe("ok");
  });

  test("min_version / max_version against a server capped at TLS 1.2", async () => {
    const s = await serve(hello, { tls: { ...serverTls, maxVersion: "TLSv1.2" } });
    const base = `tls: true\ntls_config: {insecure_skip_verify: true`;
    const r = await probeTcp(s.target, `${base}}`);
    expect([reasonOf(r), r.tlsVersion]).toEqual(["ok", "TLS 1.2"]);
    const v13 = await probeTcp(s.target, `${base}, min_version: TLS13}`);
    expect(reasonOf(v13)).toBe("tls");
    const modern = await serve(hello, { tls: serverTls });
    const capped = await probeTcp(modern.target, `${base}, max_version: TLS12}`);
    expect([reasonOf(capped), capped.tlsVersion]).toEqual(["ok", "TLS 1.2"]);
  });
});

describe("starttls", () => {
  /** blackbox example.yml's smtp_starttls module, verbatim, with tls_config added. */
  const SMTP_STARTTLS = `query_response:
  - expect: "^220 ([^ ]+) ESMTP (.+)$"
  - send: "EHLO prober\\r"
  - expect: "^250-STARTTLS"
  - send: "STARTTLS\\r"
  - expect: "^220"
  - starttls: true
  - send: "EHLO prober\\r"
  - expect: "^250-AUTH"
  - send: "QUIT\\r"`;

  test("SMTP: plain greeting, STARTTLS, then EHLO over TLS; the handshake is the tls phase", async () => {
    const s = await serve(smtp(serverTls));
    const r = await probeTcp(s.target, `${SMTP_STARTTLS}\ntls_config: {ca_file: "${certs.caFile}"}`);
    expect(outcome(r)).toEqual({ reason: "ok", error: "" });
    expect(r.tlsVersion).toBe("TLS 1.3");
    expect(r.tlsSeconds).toBeGreaterThan(0);
    expect(r.sslEarliestCertExpiry).toBeGreaterThan(0n);
    while (s.transcript.length < 4) await Bun.sleep(5); // QUIT was written before the probe ended; the server reads it in its own time
    expect(s.transcript).toEqual(["EHLO prober", "STARTTLS", "EHLO prober", "QUIT"]);
  });

  test("an untrusted certificate fails the STARTTLS step (tls), naming it; plain lines before it were exchanged", async () => {
    const s = await serve(smtp(serverTls));
    const r = await probeTcp(s.target, SMTP_STARTTLS);
    expect(reasonOf(r)).toBe("tls");
    expect(r.error).toStartWith("query_response[5]: starttls: ");
    expect([r.tlsSeconds, r.tlsVersion]).toEqual([0, ""]);
    expect(s.transcript).toEqual(["EHLO prober", "STARTTLS"]);
  });

  test("PostgreSQL: !!binary SSLRequest, expect_bytes S, starttls (blackbox's postgresql module); N fails expect_bytes", async () => {
    const module = `query_response:\n- send: !!binary AAAACATSFi8=\n- expect_bytes: S\n- starttls: true\ntls_config: {insecure_skip_verify: true}`;
    const yes = await serve(pgSsl(serverTls, "S"));
    const r = await probeTcp(yes.target, module);
    expect([reasonOf(r), r.tlsVersion]).toEqual(["ok", "TLS 1.3"]);
    const no = await serve(pgSsl(serverTls, "N"));
    expect(outcome(await probeTcp(no.target, module))).toEqual({ reason: "expect_bytes", error: "query_response[1]: read 4e, expect_bytes is 53 (hex)" });
  });
});
