/**
 * TLS shared by every kind that speaks it (http, tcp, grpc), as blackbox_exporter keeps
 * `prober/tls.go` for all its probers: the probe file's `tls_config` (Prometheus common config
 * names: ca_file, cert_file, key_file, server_name, insecure_skip_verify, min_version,
 * max_version), its protobuf form (TlsConfig, tls.proto), node:tls options built from it, and what
 * a handshake reports (version, earliest certificate expiry).
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import { isAbsolute, join } from "node:path";
import tls from "node:tls";
import { create } from "@bufbuild/protobuf";
import { z } from "zod";
import { TlsConfigSchema, type TlsConfig } from "../rpc/gen/probermesh/v1/tls_pb.ts";

/** TLS version names of Prometheus' common config (blackbox's min_version / max_version) → node:tls names. */
export const TLS_VERSIONS = { TLS10: "TLSv1", TLS11: "TLSv1.1", TLS12: "TLSv1.2", TLS13: "TLSv1.3" } as const satisfies Record<string, tls.SecureVersion>;

const tlsVersion = z.enum(Object.keys(TLS_VERSIONS) as [keyof typeof TLS_VERSIONS, ...(keyof typeof TLS_VERSIONS)[]]);

/** The `tls_config:` keys as written in the probe file (Prometheus common config names). */
export const tlsConfigKeys = z
  .strictObject({
    insecure_skip_verify: z.boolean().optional(),
    ca_file: z.string().min(1).optional(),
    ca: z.string().min(1).optional(),
    cert_file: z.string().min(1).optional(),
    cert: z.string().min(1).optional(),
    key_file: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    server_name: z.string().optional(),
    min_version: tlsVersion.optional(),
    max_version: tlsVersion.optional(),
  })
  .describe("{insecure_skip_verify, ca_file | ca, cert_file | cert, key_file | key, server_name, min_version, max_version}: files are read by the server (relative to the probe file) and sent to agents as PEM; versions TLS10..TLS13");

/** The keys as parsed. */
export type TlsConfigKeys = z.infer<typeof tlsConfigKeys>;

/** Where a module's files are read and how a problem is reported (a zod refinement context). */
export interface FileReader {
  /** The probe file's directory: relative paths are read from here. */
  baseDir: string;
  /** Reports an issue at `path` (relative to the module) with `message`. */
  issue(path: (string | number)[], message: string): void;
}

/** Reads a file a module names (relative to the probe file); a failure is an issue at `at` and "" is returned. */
export function readModuleFile(r: FileReader, file: string | undefined, at: (string | number)[]): string {
  if (!file) return "";
  const path = isAbsolute(file) ? file : join(r.baseDir, file);
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    r.issue(at, `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return "";
  }
}

/**
 * Builds the protobuf TlsConfig of a parsed `tls_config:` (at `at` in the module), reading its
 * files and checking them as Prometheus' common config does: PEM content, a certificate needs its
 * key and the reverse, inline and file forms exclusive, min_version not above max_version.
 */
export function tlsConfigFrom(k: TlsConfigKeys | undefined, r: FileReader, at: (string | number)[] = ["tls_config"], insecureShorthand?: boolean): TlsConfig {
  const c = k ?? {};
  for (const [inline, file] of [["ca", "ca_file"], ["cert", "cert_file"], ["key", "key_file"]] as const) {
    if (c[inline] !== undefined && c[file] !== undefined) r.issue([...at, file], `at most one of ${inline} & ${file} must be configured`);
  }
  const caPem = c.ca ?? readModuleFile(r, c.ca_file, [...at, "ca_file"]);
  const certPem = c.cert ?? readModuleFile(r, c.cert_file, [...at, "cert_file"]);
  const keyPem = c.key ?? readModuleFile(r, c.key_file, [...at, "key_file"]);
  if (c.ca_file && caPem && !caPem.includes("-----BEGIN CERTIFICATE-----")) r.issue([...at, "ca_file"], `${c.ca_file} holds no PEM certificate`);
  if ((c.cert ?? c.cert_file) && !(c.key ?? c.key_file)) r.issue([...at, "key_file"], "client cert file specified without client key file");
  if ((c.key ?? c.key_file) && !(c.cert ?? c.cert_file)) r.issue([...at, "cert_file"], "client key file specified without client cert file");
  if (certPem && keyPem) {
    try {
      tls.createSecureContext({ cert: certPem, key: keyPem });
    } catch (e) {
      r.issue([...at, "cert_file"], `client certificate and key do not load: ${(e as Error).message}`);
    }
  }
  const order = Object.keys(TLS_VERSIONS);
  if (c.min_version && c.max_version && order.indexOf(c.min_version) > order.indexOf(c.max_version)) {
    r.issue([...at, "min_version"], `min_version ${c.min_version} is above max_version ${c.max_version}`);
  }
  return create(TlsConfigSchema, {
    insecureSkipVerify: insecureShorthand ?? c.insecure_skip_verify ?? false,
    caPem, certPem, keyPem,
    serverName: c.server_name ?? "",
    minVersion: c.min_version ?? "",
    maxVersion: c.max_version ?? "",
  });
}

/** A copy-in-place redaction of the TlsConfig's secret (the client key). */
export function redactTlsConfig(tc: TlsConfig | undefined, placeholder: string): void {
  if (tc?.keyPem) tc.keyPem = placeholder;
}

const contexts = new Map<string, tls.SecureContext>();

/**
 * One TLS context per distinct (CA bundle, client certificate, key, versions), reused by every
 * probe: building it per connection costs CPU and native memory that was seen to grow RSS over
 * thousands of rounds. Bounded: the configs come from the probe file.
 */
function secureContextFor(tc: TlsConfig): tls.SecureContext | undefined {
  if (!tc.caPem && !tc.certPem && !tc.minVersion && !tc.maxVersion) return undefined;
  const key = JSON.stringify([tc.caPem, tc.certPem, tc.keyPem, tc.minVersion, tc.maxVersion]);
  let c = contexts.get(key);
  if (!c) {
    if (contexts.size > 64) contexts.clear();
    c = tls.createSecureContext({
      ca: tc.caPem || undefined,
      cert: tc.certPem || undefined,
      key: tc.keyPem || undefined,
      minVersion: TLS_VERSIONS[tc.minVersion as keyof typeof TLS_VERSIONS],
      maxVersion: TLS_VERSIONS[tc.maxVersion as keyof typeof TLS_VERSIONS],
    });
    contexts.set(key, c);
  }
  return c;
}

/**
 * node:tls connect options for a handshake with `host` (the target's host name or IP literal)
 * under `tc`: the certificate is checked against server_name or the host, SNI is sent for names
 * only (never an IP literal), `alpn` is offered (e.g. ["h2", "http/1.1"]).
 * @param insecure also skip verification (http's legacy top-level insecure_skip_verify)
 */
export function tlsOptions(tc: TlsConfig | undefined, host: string, alpn: string[], insecure = false): tls.ConnectionOptions {
  const serverName = tc?.serverName || (net.isIP(host) ? undefined : host);
  return {
    host: serverName ?? host,
    servername: serverName,
    secureContext: tc ? secureContextFor(tc) : undefined,
    rejectUnauthorized: !(insecure || tc?.insecureSkipVerify),
    ALPNProtocols: alpn.length ? alpn : undefined,
  };
}

/** Earliest NotAfter over the peer chain, unix seconds (blackbox's probe_ssl_earliest_cert_expiry); 0 without a certificate. */
export function earliestExpiry(cert: tls.DetailedPeerCertificate | undefined): number {
  let min = 0;
  const seen = new Set<string>();
  for (let c = cert; c && c.valid_to && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    const t = Math.floor(Date.parse(c.valid_to) / 1000);
    if (Number.isFinite(t) && (min === 0 || t < min)) min = t;
  }
  return min;
}

/** What a completed handshake reports: the negotiated version ("TLSv1.3") and the earliest certificate expiry (unix seconds). */
export function handshakeFacts(s: tls.TLSSocket): { version: string; certExpiry: number } {
  return { version: s.getProtocol() ?? "", certExpiry: earliestExpiry(s.getPeerCertificate(true)) };
}
