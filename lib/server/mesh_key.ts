/**
 * The mesh key (HeartbeatResponse.mesh_key, docs/security.md "Responders"): 32 bytes under which
 * agents tag their UDP probes (HMAC-SHA256, lib/probes/udp/packet.ts); a responder answers only
 * probes whose tag verifies, so it cannot be used as a reflector by anyone without the key.
 *
 * Where it comes from, in order:
 *   1. -server.mesh.key.file: SHA-256 of the file's content (any length, any bytes), so every
 *      server given the same file hands out the same key;
 *   2. with a shared registry (-server.registry.url): one random key stored in Redis with SET NX
 *      and read back, so every server of a failover group hands out the first one written;
 *   3. otherwise a random key per process. A restart changes it; agents keep accepting their
 *      previous key as well, so a restart costs at most one heartbeat interval of answers.
 *
 * The key is a secret: never logged, never in /metrics, the JSON API or an error message; only
 * agents that passed the RPC token gate (Heartbeat) receive it.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

/** Bytes of a mesh key (HMAC-SHA256 key size). */
export const MESH_KEY_LEN = 32;

/** The flag naming the key file (for messages). */
export const MESH_KEY_FLAG = "-server.mesh.key.file";

/**
 * The key of a key file: SHA-256 of its content.
 * @throws Error naming the flag and the file (never the content) when it is unreadable or empty
 */
export function meshKeyFromFile(path: string): Uint8Array {
  let content: Buffer;
  try {
    content = readFileSync(path);
  } catch (e) {
    throw new Error(`flag ${MESH_KEY_FLAG}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
  }
  if (content.length === 0 || content.toString("latin1").trim() === "") throw new Error(`flag ${MESH_KEY_FLAG}: ${path} is empty; put a long random secret in it (e.g. openssl rand -hex 32 > ${path})`);
  return new Uint8Array(createHash("sha256").update(content).digest());
}

/** A fresh random key. */
export function randomMeshKey(): Uint8Array {
  return new Uint8Array(randomBytes(MESH_KEY_LEN));
}

/** The key as stored in Redis: 64 lower-case hex digits. */
export const meshKeyHex = (k: Uint8Array) => Buffer.from(k).toString("hex");

/** A stored key back, or undefined when the value is not 64 hex digits. */
export function meshKeyFromHex(s: unknown): Uint8Array | undefined {
  return typeof s === "string" && /^[0-9a-f]{64}$/.test(s) ? new Uint8Array(Buffer.from(s, "hex")) : undefined;
}

/**
 * The server's current mesh key. Holds a random one until a shared key is obtained (set once);
 * `fixed` keys (from the file) never change.
 */
export class MeshKey {
  private key: Uint8Array;
  /** True once the key is final: from the file, or read from the shared registry. */
  settled: boolean;
  /** True when the key came from -server.mesh.key.file (never written to the shared registry). */
  readonly fromFile: boolean;

  constructor(fixed?: Uint8Array) {
    this.key = fixed ?? randomMeshKey();
    this.settled = fixed !== undefined;
    this.fromFile = fixed !== undefined;
  }

  /** The key to hand out (a copy: callers put it in messages). */
  get current(): Uint8Array {
    return this.key.slice();
  }

  /** Adopts the key shared through the registry (once; a file key is never replaced). */
  adoptShared(k: Uint8Array): void {
    if (this.settled || k.length !== MESH_KEY_LEN) return;
    this.key = k;
    this.settled = true;
  }

  /** Never print the key by accident (logs, errors). */
  toJSON(): string {
    return "<mesh key>";
  }
  toString(): string {
    return "<mesh key>";
  }
}
