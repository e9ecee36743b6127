/**
 * The echo engine's sockets with settings (blackbox_exporter's ttl, dont_fragment and
 * source_ip_address): a TTL, the DF bit or a bound local address belong to a socket, not to one
 * request, so rounds that ask for them cannot use the engine's shared per-family sockets. One
 * socket per distinct (family, ttl, dont_fragment, source) is opened on first use, shared by every
 * round that asks for the same, closed VARIANT_IDLE_MS after its last round ended, and at most
 * MAX_VARIANT_SOCKETS are open (the settings come from the probe file). These sockets have
 * IP_RECVERR: the ICMP errors about their requests (time exceeded, fragmentation needed, packet too
 * big, unreachable) and the host's own EMSGSIZE reach the engine, which ends the request then and
 * names the error in the round's `error`.
 */
import { isIPv4, isIPv6 } from "node:net";
import { ipv4Bytes, ipv6Bytes } from "./libc.ts";
import type { Datagram, IcmpSocket, QueuedIcmpError } from "./socket.ts";
import { SocketSetupError, type SocketSetup } from "./socket_setup.ts";

/** Socket settings a round may ask for (EchoOptions' ttl, dontFragment, sourceIp). */
export interface VariantSettings {
  /** TTL / hop limit 1..255; 0 or absent: the system default. */
  ttl?: number;
  dontFragment?: boolean;
  /** Local address (IP literal of the destination's family); "" or absent: chosen by the kernel. */
  sourceIp?: string;
}

/** Open sockets with settings, at most (each holds 1 MiB of receive slots in JS memory and a kernel receive buffer). */
export const MAX_VARIANT_SOCKETS = 32;
/** A socket with settings is closed this long after the last round using it ended, ms. */
export const VARIANT_IDLE_MS = 60_000;

/** One open socket with settings. */
export interface VariantSocket {
  readonly key: string;
  readonly sock: IcmpSocket;
  readonly settings: VariantSettings;
  /** Rounds using it now. */
  users: number;
  idleTimer: ReturnType<typeof setTimeout> | undefined;
  readonly onDatagram: (d: Datagram) => void;
  readonly onError: (e: QueuedIcmpError) => void;
}

/** True when a round asks for any setting (it then needs a socket of its own). */
export function hasSettings(o: VariantSettings): boolean {
  return !!(o.ttl || o.dontFragment || o.sourceIp);
}

/** The sockets with settings of one engine. */
export class VariantSockets {
  private readonly byKey = new Map<string, VariantSocket>();
  /** The open ones, for the engine's drain loop. */
  readonly list: VariantSocket[] = [];

  /**
   * @param open opens a socket of the family with `setup` (raw sockets avoid the engine's other identifiers)
   * @param onDatagram / onError what the engine does with a datagram / queued error of a socket
   * @param idleMs how long a socket stays open after its last round ended, ms
   */
  constructor(
    private readonly open: (v6: boolean, setup: SocketSetup) => IcmpSocket,
    private readonly onDatagram: (v: VariantSocket, d: Datagram) => void,
    private readonly onError: (v: VariantSocket, e: QueuedIcmpError) => void,
    private readonly idleMs = VARIANT_IDLE_MS,
  ) {}

  /**
   * The socket for `settings` towards a destination of family `v6`, opened now if needed; the
   * caller releases it when its round ends.
   * @throws Error with the module option at fault: a TTL outside 1..255, a source address of the
   *   other family or not an IP literal, a source the host does not have ("source_ip_address
   *   192.0.2.1: bind: Cannot assign requested address (errno 99): not an address of this host"),
   *   or more than MAX_VARIANT_SOCKETS settings in use at once
   */
  acquire(v6: boolean, destIp: string, settings: VariantSettings): VariantSocket {
    const ttl = settings.ttl || 0;
    const src = settings.sourceIp || "";
    if (!(Number.isInteger(ttl) && ttl >= 0 && ttl <= 255)) throw new RangeError(`ttl ${ttl}: must be 0..255`);
    if (src && !(v6 ? isIPv6(src) : isIPv4(src))) {
      throw new Error(`source_ip_address ${src} is not an ${v6 ? "IPv6" : "IPv4"} address and the target ${destIp} is: the families must match (preferred_ip_protocol picks a name's family)`);
    }
    const key = `${v6 ? 6 : 4}|${ttl}|${settings.dontFragment ? 1 : 0}|${src}`;
    let v = this.byKey.get(key);
    if (!v) {
      if (this.list.length >= MAX_VARIANT_SOCKETS && !this.evictIdle()) {
        throw new Error(`more than ${MAX_VARIANT_SOCKETS} distinct (ttl, dont_fragment, source_ip_address) settings in use at once: each needs a socket of its own`);
      }
      const setup: SocketSetup = { recvErr: true, ownIdentifierOnly: true };
      if (ttl) setup.ttl = ttl;
      if (settings.dontFragment) setup.dontFragment = true;
      else if (!v6) setup.dontFragment = false; // as the shared IPv4 socket: DF never set
      if (src) setup.source = v6 ? ipv6Bytes(src) : ipv4Bytes(src);
      let sock: IcmpSocket;
      try {
        sock = this.open(v6, setup);
      } catch (e) {
        if (!(e instanceof SocketSetupError)) throw e;
        const option = e.setting === "source" ? `source_ip_address ${src}` : e.setting === "ttl" ? `ttl ${ttl}` : e.setting;
        throw new Error(`${option}: ${e.message}`);
      }
      const created: VariantSocket = {
        key, sock, settings: { ttl, dontFragment: !!settings.dontFragment, sourceIp: src }, users: 0, idleTimer: undefined,
        onDatagram: (d) => this.onDatagram(created, d),
        onError: (e) => this.onError(created, e),
      };
      v = created;
      this.byKey.set(key, v);
      this.list.push(v);
    }
    if (v.idleTimer) clearTimeout(v.idleTimer);
    v.idleTimer = undefined;
    v.users++;
    return v;
  }

  /** A round using `v` ended; the socket closes `idleMs` after its last round. */
  release(v: VariantSocket): void {
    if (--v.users > 0 || !this.byKey.has(v.key)) return;
    v.idleTimer = setTimeout(() => {
      if (v.users === 0) this.closeOne(v);
    }, this.idleMs);
    v.idleTimer.unref?.();
  }

  /** Reads every open socket's datagrams and queued errors (local ones too). */
  drain(): void {
    for (const v of this.list) {
      v.sock.drain(v.onDatagram);
      v.sock.drainErrors(v.onError, true);
    }
  }

  /** Identifiers of the open raw sockets (a new raw socket picks another). */
  identifiers(): Set<number> {
    return new Set(this.list.filter((v) => v.sock.kind === "raw").map((v) => v.sock.identifier));
  }

  /** Closes every socket (the engine finishes their rounds first). */
  close(): void {
    for (const v of [...this.list]) this.closeOne(v);
  }

  private evictIdle(): boolean {
    const idle = this.list.find((v) => v.users === 0);
    if (idle) this.closeOne(idle);
    return idle !== undefined;
  }

  private closeOne(v: VariantSocket): void {
    if (v.idleTimer) clearTimeout(v.idleTimer);
    v.idleTimer = undefined;
    v.sock.close();
    this.byKey.delete(v.key);
    const i = this.list.indexOf(v);
    if (i >= 0) this.list.splice(i, 1);
  }
}
