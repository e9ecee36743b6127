/**
 * The tcp, dns and grpc probers against Debian's blackbox_exporter (`/probe`), side by side in one
 * run on the same loopback servers (tests/helpers: a TCP banner server with and without TLS, the
 * dns-packet DNS server, a connect-node gRPC health server). Prints a markdown table of medians:
 * the phases where both report them, the whole probe otherwise. Needs prometheus-blackbox-exporter
 * (apt-get install prometheus-blackbox-exporter); no root.
 *
 *   npm run bench:kinds                 # 50 probes per prober and target
 *   npm run bench:kinds -- --probes 200
 *
 * What is compared (blackbox_exporter 0.23's metrics):
 *   tcp   our duration_seconds (resolve + connect + tls + dialogue) vs probe_duration_seconds
 *   dns   our connect + tls + query (query written -> reply read) vs probe_dns_duration_seconds{phase="connect"} + {phase="request"}
 *   grpc  our connect + tls + check vs probe_grpc_duration_seconds{phase="check"} (grpc-go connects inside its check)
 * blackbox's probe_duration_seconds includes its HTTP handler and registry; ours is the prober's own time.
 */
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { spawn } from "bun";
import { parseProbeFile } from "../lib/targets/config.ts";
import { DnsProber } from "../lib/probes/dns/prober.ts";
import { GrpcProber } from "../lib/probes/grpc/prober.ts";
import { TcpProber } from "../lib/probes/tcp/prober.ts";
import { DnsTargetSchema } from "../lib/rpc/gen/probermesh/v1/dns_pb.ts";
import { GrpcTargetSchema } from "../lib/rpc/gen/probermesh/v1/grpc_pb.ts";
import { TcpTargetSchema } from "../lib/rpc/gen/probermesh/v1/tcp_pb.ts";
import { makeCerts } from "../tests/helpers/certs.ts";
import { startDnsServer } from "../tests/helpers/dns_server.ts";
import { startHealthServer } from "../tests/helpers/grpc_server.ts";
import { freePort } from "../tests/helpers/procs.ts";
import { banner, startTcpServer } from "../tests/helpers/tcp_servers.ts";

const args = process.argv.slice(2);
const N = Number(args[args.indexOf("--probes") + 1] || 0) || 50;
const blackbox = Bun.which("prometheus-blackbox-exporter");
if (!blackbox) {
  console.error("bench/kinds.ts needs prometheus-blackbox-exporter (apt-get install prometheus-blackbox-exporter)");
  process.exit(2);
}

const certs = await makeCerts();
const pem = { cert: readFileSync(certs.serverCert, "utf8"), key: readFileSync(certs.serverKey, "utf8") };
const tcpPlain = await startTcpServer(banner("SSH-2.0-bench"));
const tcpTls = await startTcpServer(banner("+OK bench"), { tls: pem });
const dns = await startDnsServer("127.0.0.1");
const grpc = await startHealthServer();
const grpcTls = await startHealthServer({ tls: pem });

/** name, kind, module (blackbox syntax, also ours through modules:), target, how to read both sides. */
const CASES = [
  { name: "tcp connect + banner", kind: "tcp", module: `{preferred_ip_protocol: ip4, query_response: [{expect: "^SSH-2.0-"}]}`, target: tcpPlain.target },
  { name: "tcp TLS + banner", kind: "tcp", module: `{preferred_ip_protocol: ip4, tls: true, tls_config: {ca_file: "${certs.caFile}"}, query_response: [{expect: "^[+]OK"}]}`, target: tcpTls.target },
  { name: "dns A over udp", kind: "dns", module: `{query_name: example.com, query_type: A, preferred_ip_protocol: ip4}`, target: `127.0.0.1:${dns.port}` },
  { name: "dns A over tcp", kind: "dns", module: `{query_name: example.com, query_type: A, transport_protocol: tcp, preferred_ip_protocol: ip4}`, target: `127.0.0.1:${dns.port}` },
  { name: "grpc health h2c", kind: "grpc", module: `{preferred_ip_protocol: ip4}`, target: `127.0.0.1:${grpc.port}` },
  { name: "grpc health TLS", kind: "grpc", module: `{tls: true, preferred_ip_protocol: ip4, tls_config: {ca_file: "${certs.caFile}"}}`, target: `127.0.0.1:${grpcTls.port}` },
] as const;

const dir = mkdtempSync(`${tmpdir()}/pm-bench-kinds-`);
const modules = `modules:\n${CASES.map((c, i) => `  m${i}:\n    prober: ${c.kind}\n    timeout: 5s\n    ${c.kind}: ${c.module}\n`).join("")}`;
writeFileSync(`${dir}/blackbox.yml`, modules);
const file = parseProbeFile(`${modules}prober_configs:\n${CASES.map((c, i) => `  - region: r${i}\n    module: m${i}\n    targets: ["${c.target}"]\n`).join("")}`, `${dir}/probes.yml`);
const port = await freePort();
const bb = spawn([blackbox, `--config.file=${dir}/blackbox.yml`, `--web.listen-address=127.0.0.1:${port}`], { stdout: "ignore", stderr: "ignore" });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};
const metric = (text: string, re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
const ms = (s: number) => (s * 1000).toFixed(3);

try {
  for (let i = 0; i < 50; i++) {
    if ((await fetch(`http://127.0.0.1:${port}/-/healthy`).catch(() => undefined))?.ok) break;
    await Bun.sleep(100);
  }
  const tcp = new TcpProber(), dnsP = new DnsProber(), grpcP = new GrpcProber();
  const rows: string[] = [];
  for (const [i, c] of CASES.entries()) {
    const block = file.blocks[i]!;
    const ours: number[] = [], theirs: number[] = [];
    let oursOk = 0, theirsOk = 0;
    for (let k = 0; k < N; k++) {
      // Ours: in-process prober, the module as the server builds it.
      if (block.proberType === "tcp") {
        const r = await tcp.probe(create(TcpTargetSchema, { targetRegion: "r", address: block.targets[0]!, module: block.module }));
        if (r.success) { oursOk++; ours.push(r.durationSeconds); }
      } else if (block.proberType === "dns") {
        const r = await dnsP.probe(create(DnsTargetSchema, { targetRegion: "r", address: block.targets[0]!, module: block.module }));
        if (r.success) { oursOk++; ours.push(r.connectSeconds + r.tlsSeconds + r.querySeconds); }
      } else if (block.proberType === "grpc") {
        const r = await grpcP.probe(create(GrpcTargetSchema, { targetRegion: "r", address: block.targets[0]!, module: block.module }));
        if (r.success) { oursOk++; ours.push(r.connectSeconds + r.tlsSeconds + r.checkSeconds); }
      }
      const text = await (await fetch(`http://127.0.0.1:${port}/probe?module=m${i}&target=${encodeURIComponent(c.target)}`)).text();
      if (metric(text, /^probe_success (\S+)/m) === 1) {
        theirsOk++;
        theirs.push(c.kind === "tcp" ? metric(text, /^probe_duration_seconds (\S+)/m)
          : c.kind === "dns" ? metric(text, /^probe_dns_duration_seconds\{phase="connect"\} (\S+)/m) + metric(text, /^probe_dns_duration_seconds\{phase="request"\} (\S+)/m)
          : metric(text, /^probe_grpc_duration_seconds\{phase="check"\} (\S+)/m));
      }
    }
    const what = c.kind === "tcp" ? "whole probe" : c.kind === "dns" ? "connect + query" : "connect + tls + check";
    rows.push(`| ${c.name} | ${what} | ${oursOk}/${N} | ${ms(median(ours))} | ${theirsOk}/${N} | ${ms(median(theirs))} | ${ms(median(ours) - median(theirs))} |`);
  }
  console.log(`\n### tcp, dns, grpc: ProberMesh vs blackbox_exporter (${N} probes each, medians, ms, loopback)\n`);
  console.log("| target | compared | ProberMesh ok | ProberMesh | blackbox ok | blackbox_exporter | ours − blackbox |");
  console.log("|---|---|---|---|---|---|---|");
  console.log(rows.join("\n"));
  tcp.close(); dnsP.close(); grpcP.close();
} finally {
  bb.kill();
  await Promise.all([tcpPlain.close(), tcpTls.close(), dns.close(), grpc.close(), grpcTls.close()]);
}
process.exit(0);
