/**
 * Agent tokens (`-server.rpc.token.file`, docs/security.md "Agent tokens"). The file has one token a
 * line; `#` starts a comment; a token may be followed by the regions it may register, separated
 * by spaces, each an exact name or a prefix ending in `*`:
 *
 *   # token                                        regions (none: any)
 *   Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5  aws-* gcp-europe-west1
 *
 * Tokens are compared in constant time (SHA-256 digests, every entry compared), never logged and
 * never echoed.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";

/** Tokens shorter than this are refused: `head -c 32 /dev/urandom | base64` gives 44 characters. */
export const MIN_TOKEN_LENGTH = 16;

/** One token of the file. `label` names it in logs without showing it ("line 3"). */
export interface TokenEntry {
  digest: Buffer;
  /** Allowed region patterns; empty: any region. */
  regions: string[];
  label: string;
}

/** Why a request was refused (label `reason` of prober_server_rpc_auth_failures_total). */
export const AUTH_FAILURE_REASONS = {
  missing: "no `Authorization: Bearer` header",
  invalid: "the token is not in the token file",
  region: "the token may not register or act for the agent's region",
  client_cert: "the TLS client certificate was missing or not trusted (mutual TLS)",
} as const;
export type AuthFailure = keyof typeof AUTH_FAILURE_REASONS;

const sha256 = (s: string) => createHash("sha256").update(s).digest();

/**
 * Parses a token file's text. @throws Error `FILE:LINE: reason` for a short token or a bad region
 * pattern; an empty file is an error too (it would lock every agent out).
 */
export function parseTokenFile(text: string, file: string): TokenEntry[] {
  const out: TokenEntry[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) return;
    const [token, ...regions] = line.split(/\s+/);
    if (token!.length < MIN_TOKEN_LENGTH) throw new Error(`${file}:${i + 1}: token shorter than ${MIN_TOKEN_LENGTH} characters (make one with: head -c 32 /dev/urandom | base64)`);
    for (const r of regions) if (!/^[^*\s]+\*?$|^\*$/.test(r)) throw new Error(`${file}:${i + 1}: bad region pattern "${r.slice(0, 64)}" (an exact region name, or a prefix ending in *)`);
    out.push({ digest: sha256(token!), regions, label: `${file}:${i + 1}` });
  });
  if (out.length === 0) throw new Error(`${file}: no token in the file`);
  return out;
}

/** The current tokens; reload() swaps them atomically (a bad file keeps the old ones). */
export class TokenStore {
  private entries: TokenEntry[] = [];

  constructor(readonly file: string) {
    this.reload();
  }

  /** Re-reads the file. @throws Error with the reason; the previous tokens stay in force. */
  reload(): number {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (e) {
      throw new Error(`${this.file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    this.entries = parseTokenFile(text, this.file);
    return this.entries.length;
  }

  /**
   * Checks an `Authorization` header value. Constant time in the token: every entry's digest is
   * compared, with no early exit. @returns the matching entry, or why there is none
   */
  check(authorization: string | undefined): TokenEntry | "missing" | "invalid" {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
    if (!m) return "missing";
    const d = sha256(m[1]!);
    let found: TokenEntry | undefined;
    for (const e of this.entries) if (timingSafeEqual(d, e.digest) && !found) found = e;
    return found ?? "invalid";
  }
}

/** True when `entry` may act for `region`. */
export function regionAllowed(entry: TokenEntry, region: string): boolean {
  return entry.regions.length === 0 || entry.regions.some((p) => (p.endsWith("*") ? region.startsWith(p.slice(0, -1)) : region === p));
}
