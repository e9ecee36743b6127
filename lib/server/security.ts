/**
 * The server's security settings (docs/security.md): the secure-by-default check, agent tokens,
 * TLS for the RPC port and the web config of the HTTP side. reload() re-reads every file (SIGHUP,
 * POST /-/reload); a file that fails keeps what was in force and the failure is reported.
 */
import { readFileSync } from "node:fs";
import { isLoopbackHost, splitHostPort, type ListenerTls } from "../rpc/listen.ts";
import { TokenStore } from "./auth/tokens.ts";
import { loadWebConfig, type WebConfig } from "./auth/web_config.ts";

/** The security flags (docs/flags.md). Empty strings mean "not set". */
export interface SecurityOptions {
  rpcListenAddr: string;
  tokenFile: string;
  rpcTlsCertFile: string;
  rpcTlsKeyFile: string;
  rpcTlsClientCaFile: string;
  insecure: boolean;
  webConfigFile: string;
}

/** A refusal to start: exit status 2 with this one-line message. */
export class StartupRefusal extends Error {
  override name = "StartupRefusal";
}

/**
 * The secure-by-default rule: agents may reach a non-loopback RPC listener from networks we do not
 * control, so it needs a token file unless -server.rpc.insecure says otherwise.
 * @returns a warning to log at every start, or "" @throws StartupRefusal
 */
export function checkExposure(o: SecurityOptions): string {
  const { host } = splitHostPort(o.rpcListenAddr);
  if (isLoopbackHost(host) || o.tokenFile) return "";
  if (o.insecure) return `agents on ${o.rpcListenAddr} are not authenticated (-server.rpc.insecure): anyone who reaches this port can register agents, push results and read probe secrets`;
  throw new StartupRefusal(
    `refusing to serve agents on ${o.rpcListenAddr} without authentication; give -server.rpc.token.file FILE (make a token with: head -c 32 /dev/urandom | base64 > token) or accept the risk with -server.rpc.insecure`,
  );
}

const readPem = (file: string, flag: string) => {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`flag -${flag}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
};

/** Current tokens, RPC TLS material and web config. */
export class Security {
  tokens: TokenStore | undefined;
  rpcTls: ListenerTls | undefined;
  web: WebConfig = { users: new Map(), headers: {} };

  /** @throws Error naming the flag or file:line for anything unreadable or malformed */
  constructor(private readonly o: SecurityOptions) {
    if (!!o.rpcTlsCertFile !== !!o.rpcTlsKeyFile) throw new Error("flags -server.rpc.tls.cert.file and -server.rpc.tls.key.file go together");
    if (o.rpcTlsClientCaFile && !o.rpcTlsCertFile) throw new Error("flag -server.rpc.tls.client.ca.file needs -server.rpc.tls.cert.file and -server.rpc.tls.key.file");
    if (o.tokenFile) this.tokens = new TokenStore(o.tokenFile);
    this.rpcTls = this.readRpcTls();
    if (o.webConfigFile) this.web = loadWebConfig(o.webConfigFile);
  }

  private readRpcTls(): ListenerTls | undefined {
    const o = this.o;
    if (!o.rpcTlsCertFile) return undefined;
    return {
      cert: readPem(o.rpcTlsCertFile, "server.rpc.tls.cert.file"),
      key: readPem(o.rpcTlsKeyFile, "server.rpc.tls.key.file"),
      clientCa: o.rpcTlsClientCaFile ? readPem(o.rpcTlsClientCaFile, "server.rpc.tls.client.ca.file") : undefined,
    };
  }

  /**
   * Re-reads the token file, the RPC certificate and the web config; each that fails keeps its
   * previous state. @returns the errors (empty when all reloaded)
   */
  reload(): string[] {
    const errors: string[] = [];
    const attempt = (f: () => void) => {
      try {
        f();
      } catch (e) {
        errors.push((e as Error).message);
      }
    };
    if (this.tokens) attempt(() => this.tokens!.reload());
    if (this.rpcTls) attempt(() => (this.rpcTls = this.readRpcTls()));
    if (this.o.webConfigFile) attempt(() => {
      const next = loadWebConfig(this.o.webConfigFile);
      if (JSON.stringify(next.tls) !== JSON.stringify(this.web.tls)) errors.push(`${this.o.webConfigFile}: tls_server_config changed: restart the server to apply it (basic_auth_users and headers were reloaded)`);
      this.web = { ...next, tls: this.web.tls };
    });
    return errors;
  }
}
