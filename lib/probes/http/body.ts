/**
 * The response body as blackbox_exporter reads it: decoded with the module's `compression` (gzip,
 * br, deflate with node:zlib; blackbox's getDecompressionReader, applied whatever Content-Encoding
 * says), then limited by body_size_limit (counted after decoding, as blackbox's MaxBytesReader
 * behind the decompressor), then kept for the body checks up to a cap (defaults.ts
 * BODY_CHECK_DEFAULT_BYTES, or body_size_limit when set). A body past the cap is marked
 * `truncated`, and checks.ts fails such a body (body_too_large) instead of checking a cut one.
 */
import zlib from "node:zlib";
import { BODY_CHECK_DEFAULT_BYTES } from "./defaults.ts";
import { ProbeFailure } from "./failure.ts";

/** How a body is read. */
export interface BodyOptions {
  /** "gzip", "br", "deflate", "identity" or "" (the module's compression). */
  compression: string;
  /** body_size_limit in bytes; 0: none. */
  limit: number;
  /** Whether the module checks the body (regexps or CEL): only then are bytes kept. */
  keep: boolean;
}

/**
 * Receives the body's bytes (transfer coding already removed) with push(), decodes and counts
 * them. A failure (body_size_limit, compression) is reported once through onFailure, after which
 * further bytes are ignored. finish() resolves once every byte is decoded.
 */
export class BodySink {
  /** Bytes received (before decoding `compression`). */
  wireBytes = 0;
  /** Bytes after decoding. */
  decodedBytes = 0;
  /** More decoded bytes came than are kept for the checks. */
  truncated = false;
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;
  private readonly cap: number;
  private decoder: zlib.Gunzip | zlib.Inflate | zlib.InflateRaw | zlib.BrotliDecompress | undefined;
  /** deflate: bytes held until the first two tell zlib from raw DEFLATE. */
  private sniff: Buffer[] = [];
  private failed = false;
  private ended: Promise<void> | undefined;

  /** Told of the first failure while bytes stream (the exchange in progress sets it). */
  onFailure: (f: ProbeFailure) => void = () => {};

  constructor(private readonly o: BodyOptions) {
    this.cap = o.keep ? (o.limit > 0 ? o.limit : BODY_CHECK_DEFAULT_BYTES) : 0;
    if (o.compression === "gzip") this.decoder = zlib.createGunzip();
    else if (o.compression === "br") this.decoder = zlib.createBrotliDecompress();
    if (this.decoder) this.wire(this.decoder);
  }

  private get decoding(): boolean {
    return this.o.compression !== "" && this.o.compression !== "identity";
  }

  private wire(d: NonNullable<BodySink["decoder"]>): void {
    d.on("data", (b: Buffer) => this.accept(b));
    d.on("error", (e: Error) => this.fail(new ProbeFailure("compression", `body is not ${this.o.compression}: ${e.message}`)));
  }

  private fail(f: ProbeFailure): void {
    if (this.failed) return;
    this.failed = true;
    this.decoder?.removeAllListeners("data");
    this.onFailure(f);
  }

  /** Decoded bytes: counted, limited, kept up to the cap. */
  private accept(b: Buffer): void {
    if (this.failed) return;
    this.decodedBytes += b.length;
    if (this.o.limit > 0 && this.decodedBytes > this.o.limit) return this.fail(new ProbeFailure("body_size_limit", `body larger than body_size_limit (${this.o.limit} bytes)`));
    if (this.keptBytes < this.cap) {
      const part = b.subarray(0, this.cap - this.keptBytes);
      this.kept.push(part);
      this.keptBytes += part.length;
    }
    if (this.decodedBytes > this.cap && this.o.keep) this.truncated = true;
  }

  /** Body bytes as received. */
  push(b: Buffer): void {
    if (this.failed || b.length === 0) return;
    this.wireBytes += b.length;
    if (!this.decoding) return this.accept(b);
    if (this.o.compression === "deflate" && !this.decoder) {
      this.sniff.push(b);
      const head = Buffer.concat(this.sniff);
      if (head.length < 2) return;
      this.sniff = [];
      // RFC 9110's deflate is zlib-wrapped (RFC 1950); Go's flate reader, which blackbox uses, reads raw DEFLATE: both are taken.
      const zlibWrapped = (head[0]! & 0x0f) === 8 && ((head[0]! << 8) | head[1]!) % 31 === 0;
      this.decoder = zlibWrapped ? zlib.createInflate() : zlib.createInflateRaw();
      this.wire(this.decoder);
      b = head;
    }
    this.decoder!.write(b);
  }

  /**
   * The body ended on the wire: resolves once the decoder has flushed (at once without
   * `compression`). @throws ProbeFailure("compression") when the body is not in that coding
   * (an empty body included, as Go's readers fail on it)
   */
  finish(): Promise<void> {
    this.ended ??= new Promise<void>((resolve, reject) => {
      if (this.failed || !this.decoding) return resolve();
      if (this.wireBytes === 0 || (this.o.compression === "deflate" && !this.decoder)) {
        this.failed = true;
        return reject(new ProbeFailure("compression", `body is not ${this.o.compression}: ${this.wireBytes === 0 ? "empty body" : "unexpected end of data"}`));
      }
      const d = this.decoder!;
      d.once("end", () => resolve());
      d.once("error", (e: Error) => reject(new ProbeFailure("compression", `body is not ${this.o.compression}: ${e.message}`)));
      d.end();
    });
    return this.ended;
  }

  /** Frees the decoder (idempotent); a late decoder error is dropped. */
  destroy(): void {
    if (!this.decoder) return;
    this.decoder.removeAllListeners("data");
    this.decoder.on("error", () => {});
    this.decoder.destroy();
  }

  /** The kept body (at most the cap). */
  bytes(): Buffer {
    return Buffer.concat(this.kept);
  }
}
