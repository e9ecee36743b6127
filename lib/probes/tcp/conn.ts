/**
 * One probe's TCP connection as the query_response dialogue sees it: lines and bytes read from a
 * buffer, writes that complete, and an upgrade to TLS in place (blackbox_exporter's net.Conn with
 * a bufio.Scanner on it, prober/query_response.go). Every wait is bounded by the probe's
 * deadline and its AbortSignal.
 *
 * Socket events (data, end, error, close) are recorded by listeners that live as long as the
 * socket is current; a wait is one pending `poll` re-run after each event. It settles exactly
 * once, whichever comes first of its condition, a failure its poll reports, the deadline or the
 * abort, and then removes its timer and abort listener. close() destroys every socket and leaves a
 * no-op error listener on each, so that nothing emitted after the probe can throw.
 */
import net from "node:net";
import tls from "node:tls";
import { handshakeFacts } from "../tls.ts";
import { ProbeFailure, type FailedReason } from "./failed_reason.ts";

/** Longest line read, in bytes: Go's bufio.MaxScanTokenSize (blackbox reads lines with a default Scanner). */
export const MAX_LINE_BYTES = 64 * 1024;

/** Bytes buffered ahead of the dialogue before the socket is paused (a chatty server cannot fill the agent's memory). */
const HIGH_WATER = 256 * 1024;

/** What a completed handshake reports: version in blackbox's names ("TLS 1.3"), earliest NotAfter in unix seconds. */
export interface TlsFacts {
  version: string;
  certExpiry: number;
}

/** "TLSv1.3" (node) -> "TLS 1.3" (blackbox's probe_tls_version_info names). */
export function tlsVersionName(v: string): string {
  const m = /^TLSv1(?:\.(\d))?$/.exec(v);
  return m ? `TLS 1.${m[1] ?? "0"}` : v;
}

const noop = () => {};

/** A connection's buffered reader and writer; see the module comment. */
export class Conn {
  private buf: Buffer = Buffer.alloc(0);
  private eof = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private readonly sockets: net.Socket[] = [];

  private constructor(private sock: net.Socket, private readonly deadline: number, private readonly signal: AbortSignal | undefined) {
    this.attach(sock);
  }

  /**
   * Connects to `ip`:`port` (bound to `localAddress` when given) and resolves once the connection
   * is established. The write side stays open after the peer's FIN (allowHalfOpen), as with Go's
   * net.Conn, so a `send` after a server's last line still goes out.
   * @param deadline performance.now() milliseconds
   * @throws ProbeFailure connect (refused, unreachable, bind failure), timeout
   */
  static async open(ip: string, port: number, localAddress: string | undefined, deadline: number, signal?: AbortSignal): Promise<Conn> {
    const sock = net.connect({ host: ip, port, localAddress: localAddress || undefined, allowHalfOpen: true, noDelay: true });
    const c = new Conn(sock, deadline, signal);
    try {
      await c.event("connect", "connect", "connecting");
      return c;
    } catch (e) {
      c.close();
      throw e;
    }
  }

  private readonly onData = (d: Buffer) => {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (this.buf.length >= HIGH_WATER) this.sock.pause();
    this.wake?.();
  };

  /** Resumes reading while fewer than `need` (at least HIGH_WATER) bytes are buffered. */
  private flow(need = 0): void {
    if (this.sock.isPaused() && this.buf.length < Math.max(HIGH_WATER, need)) this.sock.resume();
  }

  private readonly onEnd = () => {
    this.eof = true;
    this.wake?.();
  };
  private readonly onError = (e: Error) => {
    this.failure ??= e;
    this.wake?.();
  };

  private attach(s: net.Socket): void {
    this.sock = s;
    this.sockets.push(s);
    this.eof = false;
    s.on("data", this.onData).on("end", this.onEnd).on("close", this.onEnd).on("error", this.onError);
  }

  private detach(): void {
    this.sock.off("data", this.onData).off("end", this.onEnd).off("close", this.onEnd).off("error", this.onError).on("error", noop);
  }

  /**
   * Waits until `poll` returns a value (it is run now and after every socket event); `poll`
   * throws to fail the wait. `what` ends the timeout message ("timed out <what>").
   */
  private wait<T>(what: string, poll: () => T | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const signal = this.signal;
      const settle = (err: Error | undefined, v?: T) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (this.wake === check) this.wake = undefined;
        if (err) reject(err);
        else resolve(v as T);
      };
      const check = () => {
        try {
          const v = poll();
          if (v !== undefined) settle(undefined, v);
        } catch (e) {
          settle(e as Error);
        }
      };
      const onAbort = () => settle(new ProbeFailure("timeout", `aborted ${what}`));
      const timer = setTimeout(() => settle(new ProbeFailure("timeout", `timed out ${what}`)), Math.max(0, this.deadline - performance.now()));
      signal?.addEventListener("abort", onAbort);
      this.wake = check;
      if (signal?.aborted) onAbort();
      else check();
    });
  }

  /** Waits for `event` on the current socket; an error or close first fails with `reason`. */
  private async event(event: string, reason: FailedReason, what: string): Promise<void> {
    let seen = false;
    const on = () => {
      seen = true;
      this.wake?.();
    };
    const s = this.sock;
    s.once(event, on);
    try {
      await this.wait(what, () => {
        if (seen) return true;
        if (this.failure) throw new ProbeFailure(reason, this.failure.message);
        if (this.eof) throw new ProbeFailure(reason, `connection closed while ${what}`);
        return undefined;
      });
    } finally {
      s.off(event, on);
    }
  }

  /**
   * The failure for a socket error, if any: tls for an error of the TLS layer after the handshake
   * (a TLS 1.3 server refuses a client certificate only after the client's side of the handshake,
   * so the alert comes with the first read), io otherwise.
   */
  private ioFailure(what: string): ProbeFailure | undefined {
    const e = this.failure as NodeJS.ErrnoException | undefined;
    if (!e) return undefined;
    const tlsLayer = this.sock instanceof tls.TLSSocket && (/^ERR_SSL_/.test(e.code ?? "") || /SSL routines|alert/i.test(e.message));
    return new ProbeFailure(tlsLayer ? "tls" : "io", `${what}: ${e.message}`);
  }

  /**
   * The next line without its "\n" or "\r\n", as Go's bufio.ScanLines; at the end of the stream a
   * last unterminated line, then null.
   * @throws ProbeFailure io (socket error, a line over MAX_LINE_BYTES), timeout
   */
  readLine(what: string): Promise<string | null> {
    return this.wait(what, (): { line: string | null } | undefined => {
      this.flow();
      const nl = this.buf.indexOf(0x0a);
      // The line and its "\n" must fit in Go's 64 KiB scan buffer.
      if (nl >= 0 ? nl + 1 > MAX_LINE_BYTES : this.buf.length >= MAX_LINE_BYTES) throw new ProbeFailure("io", `${what}: line longer than ${MAX_LINE_BYTES} bytes`);
      if (nl >= 0 || (this.eof && this.buf.length > 0)) {
        const end = nl >= 0 ? nl : this.buf.length;
        const line = this.buf.subarray(0, end > 0 && this.buf[end - 1] === 0x0d ? end - 1 : end);
        this.buf = this.buf.subarray(nl >= 0 ? nl + 1 : end);
        return { line: line.toString("utf8") };
      }
      const f = this.ioFailure(what);
      if (f) throw f;
      return this.eof ? { line: null } : undefined;
    }).then((r) => r.line);
  }

  /**
   * Exactly `n` bytes, or fewer when the stream ends first.
   * @throws ProbeFailure io, timeout
   */
  readBytes(n: number, what: string): Promise<Buffer> {
    return this.wait(what, () => {
      this.flow(n);
      if (this.buf.length >= n || (this.eof && !this.failure)) {
        const got = this.buf.subarray(0, n);
        this.buf = this.buf.subarray(got.length);
        return got;
      }
      const f = this.ioFailure(what);
      if (f) throw f;
      return undefined;
    });
  }

  /**
   * Writes `data` and resolves once it is handed to the kernel (Go's blocking Write).
   * @throws ProbeFailure io, timeout
   */
  async write(data: Uint8Array, what: string): Promise<void> {
    let done = false;
    let err: Error | null | undefined;
    this.sock.write(data, (e) => {
      done = true;
      err = e;
      this.wake?.();
    });
    await this.wait(what, () => {
      if (err) throw new ProbeFailure("io", `${what}: ${err.message}`);
      if (done) return true;
      const f = this.ioFailure(what);
      if (f) throw f;
      return undefined;
    });
  }

  /**
   * A TLS handshake on the connection as it stands (`tls: true` right after connect, or a
   * `starttls` step). Plain bytes read ahead and not consumed are dropped: a server may not send
   * anything between its go-ahead and the handshake (the STARTTLS injection of CVE-2011-0411).
   * @param options node:tls options (lib/probes/tls.ts tlsOptions)
   * @throws ProbeFailure tls, timeout
   */
  async startTls(options: tls.ConnectionOptions): Promise<TlsFacts> {
    this.detach();
    this.buf = Buffer.alloc(0);
    this.failure = undefined;
    const t = tls.connect({ ...options, socket: this.sock });
    this.attach(t);
    await this.event("secureConnect", "tls", "in the TLS handshake");
    const f = handshakeFacts(t);
    return { version: tlsVersionName(f.version), certExpiry: f.certExpiry };
  }

  /** Destroys every socket of the connection (plain and TLS); idempotent. */
  close(): void {
    if (this.wake) this.wake = undefined;
    this.detach();
    for (const s of this.sockets) {
      s.on("error", noop);
      s.destroy();
    }
  }
}
