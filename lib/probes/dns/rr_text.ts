/**
 * Resource records as text, byte for byte as github.com/miekg/dns's RR.String() prints them, since
 * blackbox_exporter matches its validate_*_rrs regular expressions against that form:
 *
 *   example.com.\t3600\tIN\tA\t127.0.0.1
 *   example.com.\t3600\tIN\tMX\t10 mail.example.com.
 *   example.com.\t3600\tIN\tTXT\t"v=spf1 -all" "second string"
 *
 * Exact for A, AAAA, CNAME, DNAME, NS, PTR, MX, SOA, SRV, TXT, SPF, CAA, HINFO, OPT (without its
 * options) and for types miekg has no name for (RFC 3597 "\# len hex" with "CLASSn\tTYPEn").
 * Other types miekg knows (DNSKEY, DS, RRSIG, ...) are printed with their usual header and the
 * RFC 3597 generic rdata instead of miekg's type-specific presentation (docs/kinds/dns.md).
 * Records come decoded by dns-packet; its names are UTF-8 label strings joined by ".".
 */
import type { Answer } from "dns-packet";
import packet from "dns-packet";
import { className, TYPE_NAMES, typeCode, typeName } from "./codes.ts";

/** miekg's isDomainNameLabelSpecial: bytes escaped with a backslash in a name. */
const NAME_SPECIAL = new Set([...". '@;()\"\\"].map((c) => c.charCodeAt(0)));

/** miekg's escapeByte: "\DDD" for an unprintable byte. */
const ddd = (b: number) => `\\${String(b).padStart(3, "0")}`;

/** One label's bytes in miekg's presentation form (special bytes escaped, unprintable as \DDD). */
function label(l: string): string {
  let out = "";
  for (const b of Buffer.from(l, "utf8")) {
    if (NAME_SPECIAL.has(b)) out += `\\${String.fromCharCode(b)}`;
    else if (b < 0x20 || b > 0x7e) out += ddd(b);
    else out += String.fromCharCode(b);
  }
  return out;
}

/** A dns-packet name ("example.com", "." for the root) as miekg's sprintName prints it: "example.com.". */
export function nameText(n: string): string {
  if (n === "." || n === "") return ".";
  return `${n.split(".").map(label).join(".")}.`;
}

/** A mailbox name decoded by dns-packet in mail mode (SOA rname: dots inside the first label come as "\."). */
function mailboxText(n: string): string {
  if (n === "." || n === "") return ".";
  return `${n.split(/(?<!\\)\./).map((l) => label(l.replace(/\\\./g, "."))).join(".")}.`;
}

/** miekg's sprintTxt: each character-string quoted, `"` and `\` escaped, unprintable bytes as \DDD, joined by a space. */
export function txtText(strings: readonly (Buffer | Uint8Array | string)[]): string {
  return strings
    .map((s) => {
      let out = '"';
      for (const b of typeof s === "string" ? Buffer.from(s, "utf8") : s) {
        if (b === 0x22 || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
        else if (b < 0x20 || b > 0x7e) out += ddd(b);
        else out += String.fromCharCode(b);
      }
      return `${out}"`;
    })
    .join(" ");
}

/**
 * An IPv6 address as Go's net.IP.String() prints it (RFC 5952: lower case, the longest run of two
 * or more zero groups, the first of equal runs, written "::"); miekg prints an IPv4-mapped address
 * as "::ffff:1.2.3.4".
 */
export function ipv6Text(s: string): string {
  const [head, tail] = s.includes("::") ? s.split("::") as [string, string] : [s, undefined];
  const parse = (p: string) => (p ? p.split(":").map((g) => parseInt(g, 16)) : []);
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const groups = [...left, ...Array(8 - left.length - right.length).fill(0), ...right] as number[];
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`;
  }
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  return best < 0 ? hex(groups) : `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

/** The type number of a dns-packet type name ("A", "UNKNOWN_65280"). */
function typeNumber(t: string): number {
  return t.startsWith("UNKNOWN_") ? Number(t.slice(8)) : (typeCode(t) ?? 0);
}

/** The class number of a dns-packet class name ("IN", "UNKNOWN_254") with its top (mDNS flush) bit restored. */
function classNumber(c: string | undefined, flush: boolean | undefined): number {
  const n = !c ? 1 : c.startsWith("UNKNOWN_") ? Number(c.slice(8)) : ({ IN: 1, CS: 2, CH: 3, HS: 4, ANY: 255 } as Record<string, number>)[c] ?? 0;
  return flush ? n | 0x8000 : n;
}

/** dns-packet's per-type codec (exported as `record`, absent from @types/dns-packet): encode writes rdlength then rdata. */
const codecOf = (packet as unknown as { record(type: string): { encode(data: unknown): Uint8Array } }).record;

/** Raw rdata of a decoded record (dns-packet keeps it as a Buffer for types it does not know; others are encoded again). */
function rdata(type: string, data: unknown): Buffer {
  if (Buffer.isBuffer(data)) return data;
  try {
    return Buffer.from(codecOf(type).encode(data)).subarray(2);
  } catch {
    return Buffer.alloc(0);
  }
}

/** RFC 3597 rdata: "\# 4 7f000001" (miekg's RFC3597.String()). */
const generic = (raw: Buffer) => `\\# ${raw.length} ${raw.toString("hex")}`;

type Data = Record<string, unknown>;

/** The rdata of a record of `type` in miekg's presentation form; undefined for types printed as RFC 3597. */
function rdataText(type: string, d: unknown): string | undefined {
  const o = (d ?? {}) as Data;
  switch (type) {
    case "A":
      return String(d);
    case "AAAA":
      return ipv6Text(String(d));
    case "CNAME": case "DNAME": case "NS": case "PTR":
      return nameText(String(d));
    case "MX":
      return `${o.preference} ${nameText(String(o.exchange))}`;
    case "SRV":
      return `${o.priority} ${o.weight} ${o.port} ${nameText(String(o.target))}`;
    case "SOA":
      return `${nameText(String(o.mname))} ${mailboxText(String(o.rname))} ${o.serial} ${o.refresh} ${o.retry} ${o.expire} ${o.minimum}`;
    case "TXT":
      return txtText(d as Buffer[]);
    case "SPF": // dns-packet keeps SPF rdata raw: TXT's character-strings
      return txtText(characterStrings(d as Buffer));
    case "HINFO":
      return txtText([String(o.cpu), String(o.os)]);
    case "CAA":
      return `${o.flags} ${o.tag} ${txtText([String(o.value)])}`;
  }
  return undefined;
}

/** Splits rdata into RFC 1035 character-strings (length-prefixed). */
function characterStrings(raw: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < raw.length; i += 1 + raw[i]!) out.push(raw.subarray(i + 1, i + 1 + raw[i]!));
  return out;
}

/** miekg's OPT.String() without the option lines: "\n;; OPT PSEUDOSECTION:\n; EDNS: version 0; flags: do; udp: 4096". */
function optText(a: Data): string {
  const flags = Number(a.flags ?? 0);
  const z = flags & 0x3fff;
  return `\n;; OPT PSEUDOSECTION:\n; EDNS: version ${a.ednsVersion ?? 0}; flags:${flags & 0x8000 ? " do" : ""}${flags & 0x4000 ? " co" : ""}; ${z ? `MBZ: 0x${z.toString(16).padStart(4, "0")}, ` : ""}udp: ${a.udpPayloadSize ?? 0}`;
}

/** One decoded record as miekg's RR.String() prints it (see the file's docstring for how exact). */
export function rrText(rr: Answer): string {
  const a = rr as unknown as Data & { name: string; type: string; ttl?: number; class?: string; flush?: boolean; data?: unknown };
  if (a.type === "OPT") return optText(a);
  const type = typeNumber(a.type);
  const klass = classNumber(a.class, a.flush);
  const name = nameText(a.name);
  const ttl = a.ttl ?? 0;
  if (TYPE_NAMES[type] === undefined) return `${name}\t${ttl}\tCLASS${klass}\tTYPE${type}\t${generic(rdata(a.type, a.data))}`;
  const head = `${name}\t${ttl}\t${className(klass)}\t${typeName(type)}\t`;
  return head + (rdataText(a.type, a.data) ?? generic(rdata(a.type, a.data)));
}
