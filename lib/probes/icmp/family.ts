/**
 * One ICMP socket per address family, opened on first use: the echo engine's shared sockets and
 * the path tracer's.
 */
import { IcmpSocket } from "./socket.ts";

/**
 * One socket per address family, each opened on first use by `open`; a failure to open is kept and
 * thrown again on every use (the message names the missing sysctl or capability). Shared by the
 * echo engine and the path tracer.
 */
export class FamilySockets {
  private sockets: [IcmpSocket | Error | undefined, IcmpSocket | Error | undefined] = [undefined, undefined];

  constructor(private readonly open: (v6: boolean) => IcmpSocket) {}

  /** The family's socket, opened now if it is the first use. @throws IcmpUnavailableError */
  get(v6: boolean): IcmpSocket {
    const i = v6 ? 1 : 0;
    let s = this.sockets[i];
    if (s === undefined) {
      try {
        s = this.open(v6);
      } catch (e) {
        s = e as Error;
      }
      this.sockets[i] = s;
    }
    if (s instanceof Error) throw s;
    return s;
  }

  /** The family's socket if it is open, else undefined (never opens one). */
  opened(v6: boolean): IcmpSocket | undefined {
    const s = this.sockets[v6 ? 1 : 0];
    return s instanceof IcmpSocket ? s : undefined;
  }

  /** Which kind of socket a family uses, or why none can be opened. */
  describe(v6: boolean): { socket: IcmpSocket } | { error: string } {
    try {
      return { socket: this.get(v6) };
    } catch (e) {
      return { error: (e as Error).message };
    }
  }

  /** Closes both; the next get() opens again. */
  close(): void {
    for (const s of this.sockets) if (s instanceof IcmpSocket) s.close();
    this.sockets = [undefined, undefined];
  }
}
