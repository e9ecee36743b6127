/**
 * `-server.web.config.file`: Prometheus exporter-toolkit's web configuration format
 * (docs/security.md "The HTTP side"), covering /metrics, the web console and /-/*:
 *
 *   tls_server_config: {cert_file, key_file, client_ca_file, client_auth_type}   (or inline cert/key/client_ca)
 *   http_server_config: {headers: {...}}
 *   basic_auth_users: {alice: $2y$10$...}   (bcrypt hashes, as `htpasswd -nBC 10 "" | tr -d ':\n'` prints)
 *
 * Keys of the format that this server cannot enforce are refused with a clear error rather than
 * accepted and ignored.
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { parse } from "yaml";
import { z } from "zod";

/** The parsed file: what Bun.serve and the basic-auth check need. */
export interface WebConfig {
  tls?: { cert: string; key: string; ca?: string; requestCert: boolean; rejectUnauthorized: boolean };
  /** user -> bcrypt hash */
  users: Map<string, string>;
  /** Response headers added to every answer. */
  headers: Record<string, string>;
}

const notSupported = (why: string) => z.unknown().refine(() => false, `not supported by ProberMesh: ${why}`).optional();
const BCRYPT = /^\$2[aby]?\$\d{2}\$[./A-Za-z0-9]{53}$/;
const HEADERS = ["Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "X-XSS-Protection", "Strict-Transport-Security"] as const;

const schema = z.strictObject({
  tls_server_config: z
    .strictObject({
      cert: z.string().optional(),
      key: z.string().optional(),
      client_ca: z.string().optional(),
      cert_file: z.string().optional(),
      key_file: z.string().optional(),
      client_ca_file: z.string().optional(),
      client_auth_type: z.enum(["NoClientCert", "RequireAndVerifyClientCert"], "must be NoClientCert or RequireAndVerifyClientCert (the other Go policies are insecure and not supported)").optional(),
      min_version: notSupported("the server accepts TLS 1.2 and 1.3"),
      max_version: notSupported("the server accepts TLS 1.2 and 1.3"),
      cipher_suites: notSupported("the TLS library's defaults are used"),
      prefer_server_cipher_suites: notSupported("the TLS library's defaults are used"),
      curve_preferences: notSupported("the TLS library's defaults are used"),
      client_allowed_sans: notSupported("use a client CA that signs only the allowed clients"),
    })
    .optional(),
  http_server_config: z.strictObject({ http2: z.boolean().optional(), headers: z.partialRecord(z.enum(HEADERS), z.string()).optional() }).optional(),
  basic_auth_users: z.record(z.string().min(1), z.string().regex(BCRYPT, "must be a bcrypt hash ($2y$10$...)")).optional(),
  rate_limit: notSupported("put a reverse proxy in front for rate limiting"),
});

/**
 * Reads and checks a web config file. Files it names are relative to it.
 * @throws Error `FILE: key: reason` (secrets are never part of the message)
 */
export function loadWebConfig(file: string): WebConfig {
  let data: unknown;
  try {
    data = parse(readFileSync(file, "utf8")) ?? {};
  } catch (e) {
    throw new Error(`${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "cannot read: ENOENT" : `not valid YAML: ${(e as Error).message.split("\n")[0]}`}`);
  }
  const r = schema.safeParse(data);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const where = i.code === "unrecognized_keys" ? [...i.path, i.keys[0]].join(".") : i.path.join(".");
    throw new Error(`${file}: ${where}: ${i.code === "unrecognized_keys" ? "unknown key" : i.message}`);
  }
  const c = r.data;
  const read = (name: string | undefined, what: string) => {
    if (!name) return undefined;
    const path = isAbsolute(name) ? name : join(dirname(file), name);
    try {
      return readFileSync(path, "utf8");
    } catch (e) {
      throw new Error(`${file}: tls_server_config.${what}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  let tls: WebConfig["tls"];
  const t = c.tls_server_config;
  if (t) {
    const cert = t.cert ?? read(t.cert_file, "cert_file");
    const key = t.key ?? read(t.key_file, "key_file");
    if (!cert || !key) throw new Error(`${file}: tls_server_config: needs cert_file and key_file (or cert and key)`);
    const ca = t.client_ca ?? read(t.client_ca_file, "client_ca_file");
    const verify = t.client_auth_type === "RequireAndVerifyClientCert";
    if (verify && !ca) throw new Error(`${file}: tls_server_config: RequireAndVerifyClientCert needs client_ca_file`);
    tls = { cert, key, ca: verify ? ca : undefined, requestCert: verify, rejectUnauthorized: verify };
  }
  return { tls, users: new Map(Object.entries(c.basic_auth_users ?? {})), headers: { ...(c.http_server_config?.headers ?? {}) } as Record<string, string> };
}
