/**
 * What other agents probe on this one (the flow mesh, docs/probes.md "UDP" and "TCP"): the UDP
 * responder on -agent.udp.listen.port (lib/probes/udp/responder.ts) and the TCP listener on
 * -agent.tcp.listen.port, which accepts connections and sends nothing, waiting for the prober's
 * reset (the connect probe measures the handshake only, as Pingmesh's). Both listen on the wildcard address
 * (IPv6 and IPv4). A port that cannot be bound is logged as a warning and announced as 0 (the
 * server then hands out no such target for this agent); probing goes on.
 */
import type { Socket, TCPSocketListener } from "bun";
import type { Logger } from "../log.ts";
import { UdpResponder } from "../probes/udp/responder.ts";

/** TCP connections open at once on the listener; beyond, a new one is reset instead of closed. */
export const TCP_LISTENER_MAX_OPEN = 1024;
/** Seconds a connection may stay open at the TCP listener before it is reset (a mesh prober resets at once). */
export const TCP_LISTENER_IDLE_S = 5;

/** Listener settings; a port 0 turns that listener off. */
export interface ListenerOptions {
  udpPort: number;
  tcpPort: number;
  /** -agent.udp.responder.max.rate. */
  udpMaxRate?: number;
  /** The mesh keys the responder accepts, current first. */
  keys: () => readonly Uint8Array[];
  log: Logger;
}

/** The running listeners. */
export interface Listeners {
  /** The port the responder answers on, 0 when off or not bound (Agent.udp_port). */
  readonly udpPort: number;
  /** The port the TCP listener accepts on, 0 when off or not bound (Agent.tcp_port). */
  readonly tcpPort: number;
  readonly responder?: UdpResponder;
  close(): void;
}

/** Starts the UDP responder and the TCP listener. Never throws: a failed bind is logged and gives port 0. */
export function startListeners(o: ListenerOptions): Listeners {
  let responder: UdpResponder | undefined;
  if (o.udpPort > 0) {
    try {
      responder = new UdpResponder({ port: o.udpPort, keys: o.keys, maxRate: o.udpMaxRate, log: o.log });
      o.log.info({ port: responder.port, maxRate: o.udpMaxRate }, "udp responder listening");
    } catch (e) {
      o.log.warn({ port: o.udpPort, err: (e as Error).message }, "udp responder not started (-agent.udp.listen.port); other agents cannot udp-probe this one, probing goes on");
    }
  }
  let tcp: TCPSocketListener<undefined> | undefined;
  if (o.tcpPort > 0) {
    let open = 0;
    // The prober closes first, with a RST (SO_LINGER 0), which leaves no state on either host. A
    // listener that closed first would leave the connection in TIME_WAIT here, and the prober's
    // next SYN from the same port a second later would meet it (a lost first SYN); a FIN racing
    // the prober's TCP_INFO read would also turn a good connect into CLOSE_WAIT. So wait for the
    // prober; a peer that never closes is reset after TCP_LISTENER_IDLE_S, or at once beyond
    // TCP_LISTENER_MAX_OPEN connections.
    const handler = {
      open(s: Socket<undefined>) {
        if (++open > TCP_LISTENER_MAX_OPEN) s.terminate();
        else s.timeout(TCP_LISTENER_IDLE_S);
      },
      timeout(s: Socket<undefined>) {
        s.terminate();
      },
      close() {
        open--;
      },
      data() {},
      error() {},
    };
    const hosts = ["::", "0.0.0.0"];
    let err: unknown;
    for (const hostname of hosts) {
      try {
        tcp = Bun.listen<undefined>({ hostname, port: o.tcpPort, socket: handler });
        break;
      } catch (e) {
        err = e;
      }
    }
    if (tcp) o.log.info({ port: tcp.port }, "tcp listener accepting connect probes");
    else o.log.warn({ port: o.tcpPort, err: (err as Error)?.message }, "tcp listener not started (-agent.tcp.listen.port); other agents cannot tcp-probe this one, probing goes on");
  }
  return {
    udpPort: responder?.port ?? 0,
    tcpPort: tcp?.port ?? 0,
    responder,
    close() {
      responder?.close();
      tcp?.stop(true);
    },
  };
}
