/**
 * Incremental HTTP/1.x response parser (RFC 9112): status line, headers, and a body framed by
 * Content-Length, chunked transfer coding, or connection close. It exists so that the probe knows
 * the exact moment the body is complete (the end of the transfer phase) without waiting for FIN.
 */

/** A parsed response head. Header names are lower-cased; repeated headers are joined with ", ". */
export interface ResponseHead {
  version: string;
  status: number;
  headers: Map<string, string>;
}

/** Thrown for a response that is not valid HTTP/1.x. */
export class HttpProtocolError extends Error {
  override name = "HttpProtocolError";
}

/** Feed bytes with push(); `done` turns true once the body is complete. */
export class ResponseParser {
  head: ResponseHead | undefined;
  /** Body bytes received so far (capped at bodyLimit; `bodyBytes` counts all). */
  readonly body: Buffer[] = [];
  bodyBytes = 0;
  done = false;
  private pending: Buffer = Buffer.alloc(0);
  private mode: "length" | "chunked" | "close" | "none" = "close";
  private remaining = 0;
  private chunkState: "size" | "data" | "crlf" | "trailer" = "size";
  private kept = 0;

  /** @param noBody true for HEAD requests; @param bodyLimit max body bytes kept for regexps */
  constructor(private readonly noBody: boolean, private readonly bodyLimit = 1 << 20) {}

  /** Consumes bytes. @throws HttpProtocolError on malformed input */
  push(data: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, data]) : data;
    if (!this.head) {
      const end = this.pending.indexOf("\r\n\r\n");
      if (end < 0) {
        if (this.pending.length > 64 * 1024) throw new HttpProtocolError("response head larger than 64 KiB");
        return;
      }
      this.head = parseHead(this.pending.subarray(0, end).toString("latin1"));
      this.pending = this.pending.subarray(end + 4);
      const s = this.head.status;
      const te = this.head.headers.get("transfer-encoding");
      const cl = this.head.headers.get("content-length");
      if (this.noBody || (s >= 100 && s < 200) || s === 204 || s === 304) this.mode = "none";
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
    this.bodyBytes += b.length;
    if (this.kept < this.bodyLimit) {
      const part = b.subarray(0, this.bodyLimit - this.kept);
      this.body.push(part);
      this.kept += part.length;
    }
  }

  private consumeBody(): void {
    if (this.mode === "close") {
      this.keep(this.pending);
      this.pending = Buffer.alloc(0);
      return;
    }
    if (this.mode === "length") {
      const take = this.pending.subarray(0, this.remaining);
      this.keep(take);
      this.remaining -= take.length;
      this.pending = this.pending.subarray(take.length);
      if (this.remaining === 0) this.done = true;
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
        this.keep(take);
        this.remaining -= take.length;
        this.pending = this.pending.subarray(take.length);
        if (this.remaining === 0) this.chunkState = "crlf";
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
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i <= 0) throw new HttpProtocolError(`bad header line "${line.slice(0, 80)}"`);
    const k = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    headers.set(k, headers.has(k) ? `${headers.get(k)}, ${v}` : v);
  }
  return { version: m[1]!, status: Number(m[2]), headers };
}
