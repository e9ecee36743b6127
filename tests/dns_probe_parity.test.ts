/**
 * Differential test: the same modules, written once in blackbox.yml form, run by the installed
 * blackbox_exporter (Debian's prometheus-blackbox-exporter, as CI installs it) and by the dns
 * kind against the same test server (tests/helpers/dns_server.ts on 127.0.0.1). Verdicts and
 * section counts must agree, and the records blackbox logs as "Validating RR" (its debug output)
 * must be the texts our validators match. Skipped when no blackbox_exporter binary is installed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { stringify } from "yaml";
import { dnsKind } from "../lib/probes/dns/kind.ts";
import { DnsProber } from "../lib/probes/dns/prober.ts";
import { freePort, skipReason, start, type Proc } from "./helpers/procs.ts";
import { startDnsServer, type DnsTestServer } from "./helpers/dns_server.ts";

const BIN = Bun.which("prometheus-blackbox-exporter") ?? Bun.which("blackbox_exporter");
if (!BIN) skipReason("dns_probe_parity needs blackbox_exporter (apt-get install prometheus-blackbox-exporter)");

const A = { query_name: "example.com", query_type: "A" };
const all = (k: string, p: string[]) => ({ validate_answer_rrs: { [k]: p } });

/** Module name -> dns section (timeout 2s each); every one runs over udp and over tcp. */
const MODULES: Record<string, Record<string, unknown>> = {
  a: A,
  any: { query_name: "example.com" },
  soa: { query_name: "example.com", query_type: "SOA" },
  chaos: { query_name: "example.com", query_type: "TXT", query_class: "CH" },
  odd: { query_name: "odd.example.com" },
  cname: { query_name: "www.example.com", query_type: "A" },
  nx: { query_name: "nx.example.com" },
  nx_ok: { query_name: "nx.example.com", valid_rcodes: ["NXDOMAIN"] },
  servfail_listed: { query_name: "servfail.example.com", valid_rcodes: ["NOERROR", "SERVFAIL"] },
  norecurse: { query_name: "recursive.example.com", query_type: "A", recursion_desired: false },
  matches_fail: { ...A, ...all("fail_if_matches_regexp", ["127\\.0\\.0\\.2$"]) },
  matches_pass: { ...A, ...all("fail_if_matches_regexp", ["7200"]) },
  all_match_fail: { ...A, ...all("fail_if_all_match_regexp", ["\\.1$"]) },
  all_match_pass: { ...A, ...all("fail_if_all_match_regexp", ["\\tIN\\tA\\t"]) },
  not_matches_fail: { ...A, ...all("fail_if_not_matches_regexp", ["\\.1$"]) },
  not_matches_pass: { ...A, ...all("fail_if_not_matches_regexp", [".*3600.*"]) },
  none_matches_fail: { ...A, ...all("fail_if_none_matches_regexp", ["127\\.0\\.0\\.3"]) },
  none_matches_pass: { ...A, ...all("fail_if_none_matches_regexp", ["zzz", "\\.2$"]) },
  authority_fail: { ...A, validate_authority_rrs: { fail_if_all_match_regexp: ["ns1"] } },
  additional_fail: { ...A, validate_additional_rrs: { fail_if_all_match_regexp: [".*127.0.0.*"] } },
  additional_none: { ...A, validate_additional_rrs: { fail_if_none_matches_regexp: [".*127.0.0.3.*"] } },
  empty_not_matches: { query_name: "empty.example.com", ...all("fail_if_not_matches_regexp", ["."]) },
  empty_all_match: { query_name: "empty.example.com", ...all("fail_if_all_match_regexp", ["zzz"]) },
  truncated: { query_name: "truncated.example.com" },
  lateid: { query_name: "lateid.example.com" },
  garbage: { query_name: "garbage.example.com" },
};

let dns: DnsTestServer;
let bb: Proc;
let bbPort = 0;
const prober = new DnsProber();

describe.skipIf(!BIN)("blackbox_exporter and the dns kind agree", () => {
  beforeAll(async () => {
    dns = await startDnsServer("127.0.0.1");
    const modules = Object.fromEntries(Object.entries(MODULES).flatMap(([name, d]) => ["udp", "tcp"].map((t) => [`${name}_${t}`, { prober: "dns", timeout: "2s", dns: { ...d, transport_protocol: t } }])));
    const dir = mkdtempSync(`${tmpdir()}/pm-bb-`);
    writeFileSync(`${dir}/blackbox.yml`, stringify({ modules }));
    bbPort = await freePort();
    bb = start([BIN!, `--config.file=${dir}/blackbox.yml`, `--web.listen-address=127.0.0.1:${bbPort}`]);
    for (let i = 0; i < 100; i++) {
      if (await fetch(`http://127.0.0.1:${bbPort}/-/healthy`).then((r) => r.ok, () => false)) return;
      await Bun.sleep(50);
    }
    throw new Error(`blackbox_exporter did not start: ${bb.output()}`);
  });
  afterAll(async () => {
    await bb?.kill();
    await dns?.close();
  });

  /** blackbox's verdict, section counts and logged records for one module. */
  async function blackbox(module: string) {
    const text = await (await fetch(`http://127.0.0.1:${bbPort}/probe?module=${module}&target=127.0.0.1:${dns.port}&debug=true`)).text();
    const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
    const rrs = [...text.matchAll(/msg="Validating RR" rr=("(?:[^"\\]|\\.)*")/g)].map((m) => JSON.parse(m[1]!) as string);
    return { success: metric("probe_success") === 1, answer: metric("probe_dns_answer_rrs"), authority: metric("probe_dns_authority_rrs"), additional: metric("probe_dns_additional_rrs"), serial: metric("probe_dns_serial"), rrs };
  }

  for (const name of Object.keys(MODULES)) {
    for (const transport of ["udp", "tcp"]) {
      test(`${name} over ${transport}`, async () => {
        const theirs = await blackbox(`${name}_${transport}`);
        const keys = { ...MODULES[name], transport_protocol: transport, timeout: "2s" };
        const ours = await prober.probe(dnsKind.target("r", `127.0.0.1:${dns.port}`, dnsKind.moduleSchema("/").parse(keys)));
        expect({ module: name, success: ours.success, ourError: ours.error }).toEqual({ module: name, success: theirs.success, ourError: ours.error });
        if (ours.rcode && Number.isFinite(theirs.answer)) {
          expect({ answer: ours.answerRrs, authority: ours.authorityRrs, additional: ours.additionalRrs }).toEqual({ answer: theirs.answer, authority: theirs.authority, additional: theirs.additional });
        }
        if (name === "soa") expect(ours.serial).toBe(theirs.serial);
        // A probe that passed logged every record it validated: each record of ours, anchored, is one
        // of them (and the counts above are equal), so our validators see the same texts.
        if (theirs.success && theirs.rrs.length) {
          const exact = `^(${theirs.rrs.map((t) => t.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&")).join("|")})$`;
          const checks = Object.fromEntries(([["answer", ours.answerRrs], ["authority", ours.authorityRrs], ["additional", ours.additionalRrs]] as const)
            .filter(([, n]) => n > 0).map(([section]) => [`validate_${section}_rrs`, { fail_if_not_matches_regexp: [exact] }]));
          const same = await prober.probe(dnsKind.target("r", `127.0.0.1:${dns.port}`, dnsKind.moduleSchema("/").parse({ ...keys, ...checks })));
          expect({ module: name, error: same.error }).toEqual({ module: name, error: "" });
        }
      });
    }
  }
});
