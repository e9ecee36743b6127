/**
 * blackbox_exporter's own configuration testdata (tests/fixtures/blackbox/, copied verbatim with a
 * header) through `./server -check.config`, the way a user checks a blackbox.yml: every file
 * blackbox accepts is accepted, every file it refuses (its config_test.go) is refused with exit 2
 * and an error that points at the offending key's line of the file and names it.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { ROOT, SERVER_BIN, run } from "./helpers/procs.ts";

const DIR = `${ROOT}tests/fixtures/blackbox`;

/**
 * blackbox's verdict per file (config/config_test.go): null = accepted; otherwise the keys the
 * error may point at (the error's line must be a line holding one of them as `key:`) and a pattern of blackbox's message that ours must also match.
 */
const VERDICTS: Record<string, null | { keys: string[]; says: RegExp }> = {
  "blackbox-good.yml": null,
  "blackbox-bad.yml": { keys: ["invalid_extra_field"], says: /invalid_extra_field/ },
  "blackbox-bad2.yml": { keys: ["bearer_token_file", "bearer_token"], says: /bearer_token/ },
  "invalid-prober.yml": { keys: ["prober"], says: /prober 'invalid' is not valid/ },
  "invalid-dns-module.yml": { keys: ["dns", "query_name"], says: /query.?name/i },
  "invalid-dns-class.yml": { keys: ["query_class"], says: /query class 'X' is not valid/ },
  "invalid-dns-type.yml": { keys: ["query_type"], says: /query type 'X' is not valid/ },
  "invalid-http-header-match.yml": { keys: ["fail_if_header_not_matches", "fail_if_header_matches", "header", "regexp"], says: /regexp/ },
  "invalid-http-body-match-regexp.yml": { keys: ["fail_if_body_matches_regexp"], says: /regular expression/ },
  "invalid-http-body-not-match-regexp.yml": { keys: ["fail_if_body_not_matches_regexp"], says: /regular expression/ },
  "invalid-http-header-match-regexp.yml": { keys: ["regexp", "fail_if_header_not_matches", "fail_if_header_matches"], says: /regular expression/ },
  "invalid-http-compression-mismatch.yml": { keys: ["compression", "Accept-Encoding", "headers"], says: /compression/ },
  "invalid-http-compression-mismatch-special-case.yml": { keys: ["compression", "accEpt-enCoding", "headers"], says: /compression/ },
  "invalid-http-request-compression-reject-all-encodings.yml": { keys: ["compression", "Accept-Encoding", "headers"], says: /compression/ },
  "invalid-http-http3-http2.yml": { keys: ["enable_http3", "valid_http_versions", "enable_http2"], says: /http3|HTTP\/3/i },
  "invalid-no-versions-http3-enabled.yml": { keys: ["enable_http3", "enable_http2"], says: /http3|HTTP\/3/i },
  "invalid-http-http3-http2-version.yml": { keys: ["enable_http3", "valid_http_versions", "enable_http2"], says: /http3|HTTP\/3/i },
  "invalid-http-http3-http2-enabled.yml": { keys: ["enable_http3", "enable_http2"], says: /http3|HTTP\/3/i },
  "invalid-http-body-config.yml": { keys: ["body_file", "body"], says: /body/ },
  "invalid-icmp-ttl.yml": { keys: ["ttl"], says: /"?ttl"? cannot be negative/ },
  "invalid-icmp-ttl-overflow.yml": { keys: ["ttl"], says: /"?ttl"? cannot exceed 255/ },
  "invalid-tcp-query-response-regexp.yml": { keys: ["expect", "query_response"], says: /regular expression/ },
};

/**
 * 1-based lines holding one of `keys` as a YAML key (`key:`, `- key:`, quoted or not), and the
 * list items right under such a key (an error may point at the bad item itself).
 */
function linesOfKeys(text: string, keys: string[]): number[] {
  const esc = (k: string) => k.replace(/[-/\\^$*+?.()|[\]{}]/g, "\\$&");
  const lines = text.split("\n");
  const out: number[] = [];
  lines.forEach((l, i) => {
    if (!keys.some((k) => new RegExp(`^\\s*(- )?["']?${esc(k)}["']?\\s*:`).test(l))) return;
    out.push(i + 1);
    const indent = /^\s*/.exec(l)![0].length;
    for (let j = i + 1; j < lines.length && /^\s*- /.test(lines[j]!) && /^\s*/.exec(lines[j]!)![0].length >= indent; j++) out.push(j + 1);
  });
  return out;
}

describe("blackbox_exporter's testdata through ./server -check.config", () => {
  for (const [file, verdict] of Object.entries(VERDICTS)) {
    test(`${file}: ${verdict ? "refused at the offending key" : "accepted"}`, async () => {
      const path = `${DIR}/${file}`;
      expect(existsSync(path)).toBe(true);
      const r = await run([SERVER_BIN, "-check.config", "-server.probe.file", path]);
      if (!verdict) {
        expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
        expect(r.stdout).toContain(`${path}: OK`);
        return;
      }
      expect(r.code).toBe(2);
      const first = r.stderr.split("\n")[0]!;
      const m = /^(.*):(\d+): (.*)$/.exec(first);
      expect(m?.[1]).toBe(path);
      const lines = linesOfKeys(readFileSync(path, "utf8"), verdict.keys);
      expect(lines.length).toBeGreaterThan(0);
      expect({ error: first, atKey: lines.includes(Number(m![2])), says: verdict.says.test(m![3]!) }).toEqual({ error: first, atKey: true, says: true });
    });
  }

  test("example.yml (blackbox's documented example): every module accepted; the only errors are the files it names (CA, body, header), which do not exist here (ProberMesh reads files at load, blackbox at probe time)", async () => {
    const path = `${DIR}/example.yml`;
    const r = await run([SERVER_BIN, "-check.config", "-server.probe.file", path]);
    const errors = r.stderr.trim().split("\n").filter(Boolean).map((e) => e.replace(/^.*?example\.yml:\d+: /, ""));
    expect(r.code).toBe(2);
    expect(errors.sort()).toEqual([
      "modules.http_custom_ca_example.http.tls_config.ca_file: cannot read /certs/my_cert.crt: ENOENT",
      "modules.http_post_body_file.http.body_file: cannot read /files/body.txt: ENOENT",
      "modules.http_with_header_from_files.http.http_headers.X-API-Key.files.0: cannot read /path/to/api-key.txt: ENOENT",
      "modules.rabbitmq.tcp.tls_config.ca_file: cannot read /etc/blackbox_exporter/CA_cert.crt: ENOENT",
      "modules.rabbitmq_insecure.tcp.tls_config.ca_file: cannot read /etc/blackbox_exporter/CA_cert.crt: ENOENT",
    ]);
  });

  test("a whole blackbox.yml with blocks that use its modules, and a block naming a module that does not exist or a prober ProberMesh does not run", async () => {
    const dir = `${ROOT}.tmp`;
    const { mkdirSync, writeFileSync } = await import("node:fs");
    mkdirSync(dir, { recursive: true });
    const good = `${dir}/bb-blocks.yml`;
    writeFileSync(good, `${readFileSync(`${DIR}/blackbox-good.yml`, "utf8")}
prober_configs:
  - region: web
    module: http_2xx
    targets: ["http://127.0.0.1:1/"]
  - region: web
    module: tcp_connect
    targets: ["127.0.0.1:22"]
`);
    const ok = await run([SERVER_BIN, "-check.config", "-server.probe.file", good]);
    expect({ code: ok.code, out: ok.stdout.trim() }).toEqual({ code: 0, out: `${good}: OK: 2 block(s), targets: http 1, tcp 1` });
    const bad = `${dir}/bb-bad-blocks.yml`;
    writeFileSync(bad, `modules:
  ws:
    prober: websocket
prober_configs:
  - region: web
    module: nope
    targets: ["127.0.0.1:22"]
  - region: web
    module: ws
    targets: ["127.0.0.1:22"]
`);
    const no = await run([SERVER_BIN, "-check.config", "-server.probe.file", bad]);
    expect(no.code).toBe(2);
    expect(no.stderr.trim().split("\n")).toEqual([
      `${bad}:6: prober_configs.0.module: no module "nope" in modules:`,
      `${bad}:9: prober_configs.1.module: module "ws" uses blackbox_exporter's websocket prober, which ProberMesh does not run: not implemented yet`,
    ]);
  });
});
