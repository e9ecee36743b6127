/**
 * DNS mnemonics as github.com/miekg/dns (the library blackbox_exporter's dns prober uses) spells
 * them: its TypeToString, ClassToString and RcodeToString tables (miekg/dns commit fa041ee,
 * BSD-3-Clause), so that query_type, query_class and valid_rcodes accept exactly the names
 * blackbox accepts (case-sensitive: "A", not "a") and records print as miekg's String() does.
 */

/** miekg/dns TypeToString: RR type number -> mnemonic (RFC 1035 and successors). */
export const TYPE_NAMES: Readonly<Record<number, string>> = {
  0: "None", 1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR", 10: "NULL", 12: "PTR", 13: "HINFO",
  14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB", 19: "X25", 20: "ISDN", 21: "RT", 23: "NSAP-PTR", 24: "SIG", 25: "KEY", 26: "PX",
  27: "GPOS", 28: "AAAA", 29: "LOC", 30: "NXT", 31: "EID", 32: "NIMLOC", 33: "SRV", 34: "ATMA", 35: "NAPTR", 36: "KX", 37: "CERT",
  39: "DNAME", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3",
  51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA", 55: "HIP", 56: "NINFO", 57: "RKEY", 58: "TALINK", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY",
  62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 99: "SPF", 100: "UINFO", 101: "UID", 102: "GID", 103: "UNSPEC", 104: "NID", 105: "L32",
  106: "L64", 107: "LP", 108: "EUI48", 109: "EUI64", 128: "NXNAME", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB",
  254: "MAILA", 255: "ANY", 256: "URI", 257: "CAA", 258: "AVC", 260: "AMTRELAY", 261: "RESINFO", 32768: "TA", 32769: "DLV", 65535: "Reserved",
};

/** miekg/dns ClassToString: class number -> mnemonic. */
export const CLASS_NAMES: Readonly<Record<number, string>> = { 1: "IN", 2: "CS", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY" };

/** miekg/dns RcodeToString: response code -> mnemonic (16 is BADSIG, also known as BADVERS). */
export const RCODE_NAMES: Readonly<Record<number, string>> = {
  0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET",
  9: "NOTAUTH", 10: "NOTZONE", 11: "DSOTYPENI", 16: "BADSIG", 17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG",
  22: "BADTRUNC", 23: "BADCOOKIE",
};

const reverse = (m: Readonly<Record<number, string>>) => new Map(Object.entries(m).map(([k, v]) => [v, Number(k)]));

const TYPES = reverse(TYPE_NAMES);
const CLASSES = reverse(CLASS_NAMES);
/** miekg/dns StringToRcode: the reverse of RcodeToString plus the alias NOTIMPL. */
const RCODES = new Map([...reverse(RCODE_NAMES), ["NOTIMPL", 4]]);

/** The type number of a mnemonic (miekg's StringToType), or undefined when blackbox would refuse it. */
export const typeCode = (name: string): number | undefined => TYPES.get(name);
/** The class number of a mnemonic (miekg's StringToClass), or undefined. */
export const classCode = (name: string): number | undefined => CLASSES.get(name);
/** The response code of a mnemonic (miekg's StringToRcode), or undefined. */
export const rcodeCode = (name: string): number | undefined => RCODES.get(name);

/** A type's mnemonic as miekg's Type.String(): "TYPE65280" for a number it has no name for. */
export const typeName = (n: number): string => TYPE_NAMES[n] ?? `TYPE${n}`;
/** A class's mnemonic as miekg's Class.String(): "CLASS42" for a number it has no name for. */
export const className = (n: number): string => CLASS_NAMES[n] ?? `CLASS${n}`;
/** A response code's mnemonic; "RCODE12" for a number miekg has no name for (miekg prints ""). */
export const rcodeName = (n: number): string => RCODE_NAMES[n] ?? `RCODE${n}`;
