/**
 * HTTP basic authentication against exporter-toolkit's `basic_auth_users` (bcrypt hashes). A bcrypt
 * check costs tens of milliseconds by design, so results are cached per (user, password, hash)
 * digest, as exporter-toolkit does, and at most two checks run at once: a flood of guesses waits
 * or is turned away (503) instead of taking the CPU.
 */
import { createHash } from "node:crypto";
import pLimit from "p-limit";

/** Cached outcomes at most (oldest dropped first). */
const CACHE_SIZE = 1024;
/** Checks waiting at most; beyond, the request gets 503. */
const MAX_WAITING = 64;

/** Outcome of a check: allowed, refused, or too busy to check now. */
export type BasicAuthOutcome = "ok" | "refused" | "busy";

export class BasicAuth {
  private readonly cache = new Map<string, boolean>();
  private readonly limit = pLimit(2);
  /** A hash to check unknown users against, so that they cost as much as known ones. */
  private readonly dummy = Bun.password.hash("probermesh-unknown-user", { algorithm: "bcrypt", cost: 10 });

  /** @param users the current user -> bcrypt hash map (it changes on reload) */
  constructor(private readonly users: () => Map<string, string>) {}

  /** True when the web config asks for authentication. */
  get enabled(): boolean {
    return this.users().size > 0;
  }

  /** Checks an `Authorization` header value. */
  async check(authorization: string | undefined): Promise<BasicAuthOutcome> {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? "");
    if (!m) return "refused";
    const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
    const i = decoded.indexOf(":");
    if (i < 0) return "refused";
    const user = decoded.slice(0, i), password = decoded.slice(i + 1);
    const hash = this.users().get(user);
    const key = createHash("sha256").update(`${user}\u0000${password}\u0000${hash ?? ""}`).digest("base64");
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached ? "ok" : "refused";
    if (this.limit.pendingCount >= MAX_WAITING) return "busy";
    const ok = await this.limit(async () => (hash ? Bun.password.verify(password, hash) : (await Bun.password.verify(password, await this.dummy), false)));
    if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, ok);
    return ok ? "ok" : "refused";
  }
}
