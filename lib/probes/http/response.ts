/**
 * Incremental HTTP/1.x response parser (RFC 9112): status line, headers, and a body framed by
 * Content-Length, chunked transfer coding, or connection close. It exists so that the probe knows
 * the exact moment the body is complete (the end of the transfer phase) without waiting for FIN.
 * Interim responses (1xx but 101, RFC 9110 §15.2: 100 Continue, 103 Early Hints) are skipped as
 * Go's net/http skips them (at most MAX_INTERIM_RESPONSES); the response after them is the final one.
 */
import { MAX_INTERIM_RESPONSES } from "./defaults.ts";

/** A parsed response head. Header names are lower-cased; a repeated header has one value per line. */
export interface ResponseHead {
  /** "HTTP/1.1", "HTTP/1.0", or "HTTP/2.0" for an HTTP/2 response (Go's resp.Proto). */
  version: string;
  status: number;
  headers: Map<string, string[]>;
}

/** The first value of header `name` (lower-case), as Go's Header.Get. */
export const headerValue = (h: ResponseHead, name: string): string | undefined => h.headers.get(name)?.[0];

/** Thrown for a response that is not valid HTTP/1.x. */
export class HttpProtocolError extends Error {
  override name = "HttpProtocolError";
}

/** Feed bytes with push(); body bytes (transfer coding removed) go to `onBody`; `done` turns true once the body is complete. */
export class ResponseParser {
  /** The final response's head, once parsed. */
  head: ResponseHead | undefined;
  /** Interim responses skipped so far. */
  interim = 0;
  /** Body bytes passed to onBody so far. */
  bodyBytes = 0;
  done = false;
  private pending: Buffer = Buffer.alloc(0);
  private mode: "length" | "chunked" | "close" | "none" = "close";
  private remaining = 0;
  private chunkState: "size" | "data" | "crlf" | "trailer" = "size";

  /** @param noBody true for HEAD requests; @param onBody receives the body's bytes as they come */
  constructor(private readonly noBody: boolean, private readonly onBody: (b: Buffer) => void) {}

  /** Consumes bytes. @throws HttpProtocolError on malformed input */
  push(data: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, data]) : data;
    while (!this.head) {
      const end = this.pending.indexOf("\r\n\r\n");
      if (end < 0) {
        if (this.pending.length > 64 * 1024) throw new HttpProtocolError("response head larger than 64 KiB");
        return;
      }
      const head = parseHead(this.pending.subarray(0, end).toString("latin1"));
      this.pending = this.pending.subarray(end + 4);
      if (head.status >= 100 && head.status < 200 && head.status !== 101) {
        if (++this.interim > MAX_INTERIM_RESPONSES) throw new HttpProtocolError(`too many 1xx informational responses (more than ${MAX_INTERIM_RESPONSES})`);
        continue;
      }
      this.head = head;
      const s = head.status;
      const te = headerValue(head, "transfer-encoding");
      const cl = headerValue(head, "content-length");
      if (this.noBody || s === 101 || s === 204 || s === 304) this.mode = "none";
      else if (te && /chunked\s*$/i.test(te)) this.mode = "chunked";
      else if (cl !== undefined) {
        if (!/^\d+$/.test(cl.trim())) throw new HttpProtocolError(`bad Content-Length "${cl}"`);
        this.mode = "length";
        this.remaining = Number(cl);
      } else this.mode = "close";
      if (this.mode === "none" || (this.mode === "length" && this.remaining === 0)) {
        this.done = true;
        return;
      }
    }
    this.consumeBody();
  }

  /** Call on connection end: completes a close-delimited body; @returns whether the body is complete. */
  end(): boolean {
    if (this.head && this.mode === "close") this.done = true;
    return this.done;
  }

  private keep(b: Buffer): void {
    if (b.length === 0) return;
    this.bodyBytes += b.length;
    this.onBody(b);
  }

  private consumeBody(): void {
    if (this.done) return;
    if (this.mode === "close") {
      const b = this.pending;
      this.pending = Buffer.alloc(0);
      this.keep(b);
      return;
    }
    if (this.mode === "length") {
      const take = this.pending.subarray(0, this.remaining);
      this.remaining -= take.length;
      this.pending = this.pending.subarray(take.length);
      if (this.remaining === 0) this.done = true;
      this.keep(take);
      return;
    }
    while (!this.done) {
      if (this.chunkState === "size" || this.chunkState === "trailer") {
        const eol = this.pending.indexOf("\r\n");
        if (eol < 0) return;
        const line = this.pending.subarray(0, eol).toString("latin1");
        this.pending = this.pending.subarray(eol + 2);
        if (this.chunkState === "trailer") {
          if (line === "") this.done = true;
          continue;
        }
        const size = parseInt(line.split(";")[0]!.trim(), 16);
        if (!Number.isFinite(size) || size < 0 || !/^[0-9a-fA-F]+/.test(line)) throw new HttpProtocolError(`bad chunk size "${line}"`);
        if (size === 0) this.chunkState = "trailer";
        else {
          this.remaining = size;
          this.chunkState = "data";
        }
      } else if (this.chunkState === "data") {
        if (this.pending.length === 0) return;
        const take = this.pending.subarray(0, this.remaining);
        this.remaining -= take.length;
        this.pending = this.pending.subarray(take.length);
        if (this.remaining === 0) this.chunkState = "crlf";
        this.keep(take);
      } else {
        if (this.pending.length < 2) return;
        this.pending = this.pending.subarray(2);
        this.chunkState = "size";
      }
    }
  }
}

function parseHead(text: string): ResponseHead {
  const lines = text.split("\r\n");
  const m = /^(HTTP\/\d(?:\.\d)?) (\d{3})(?: .*)?$/.exec(lines[0]!);
  if (!m) throw new HttpProtocolError(`bad status line "${lines[0]!.slice(0, 80)}"`);
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i <= 0) throw new HttpProtocolError(`bad header line "${line.slice(0, 80)}"`);
    const k = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    const list = headers.get(k);
    if (list) list.push(v);
    else headers.set(k, [v]);
  }
  return { version: m[1]!, status: Number(m[2]), headers };
}
