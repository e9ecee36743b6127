/**
 * blackbox_exporter's regexps (tcp `expect`, http body and header matches, dns RR validation) are
 * Go's RE2 syntax (regexp/syntax); agents match with JavaScript's RegExp. This module translates the RE2 forms JavaScript spells differently and
 * refuses the ones it cannot express, so that a pattern means the same thing on both sides or is
 * refused when the probe file is read (never silently matching something else):
 *
 *   (?P<name>re)          -> (?<name>re)
 *   (?flags) at the start -> RegExp flags i, m, s (U, ungreedy, is refused); (?i:re) is kept
 *   \A  \z                -> start / end of the text (lookarounds; \A and \z are not JavaScript)
 *   ^ $ \b \B \A \z        -> in a group, so that a repeated assertion ("^+OK") compiles as in RE2
 *   \Q...\E               -> the text between, literally
 *   \pL  \p{Greek}        -> \p{L}  \p{Script=Greek}
 *   \x{263a}  \123 (octal) -> \u{263a}  \x53
 *   [[:alpha:]]           -> [a-zA-Z] (ASCII classes of RE2); [[:^alpha:]] is refused
 *   \. \- \# ... (any escaped ASCII punctuation) -> \xHH; a `{` that starts no repetition, a `]`
 *                          or `}` outside a class -> literal, as RE2 reads them
 *
 * The result always has the `u` flag (code points, strict syntax: an escape JavaScript would
 * otherwise read as a plain letter is an error). Backreferences (\1) are refused, as by RE2.
 * Also: Go's Regexp.Expand for `send` templates ($1, ${1}, $name, ${name}, $$).
 */

const POSIX: Record<string, string> = {
  alnum: "0-9A-Za-z", alpha: "A-Za-z", ascii: "\\x00-\\x7f", blank: "\\t ", cntrl: "\\x00-\\x1f\\x7f", digit: "0-9",
  graph: "!-~", lower: "a-z", print: " -~", punct: "!-\\/:-@\\[-`{-~", space: "\\t\\n\\v\\f\\r ", upper: "A-Z",
  word: "0-9A-Za-z_", xdigit: "0-9A-Fa-f",
};

/** Unicode general categories (\p{..} as is); any other \p name is a script. */
const CATEGORIES = new Set("L Lu Ll Lt Lm Lo M Mn Mc Me N Nd Nl No P Pc Pd Ps Pe Pi Pf Po S Sm Sc Sk So Z Zs Zl Zp C Cc Cf Cs Co".split(" "));

const hex = (cp: number) => (cp < 0x100 ? `\\x${cp.toString(16).padStart(2, "0")}` : `\\u{${cp.toString(16)}}`);
const isPunct = (c: string) => /^[!-/:-@[-`{-~]$/.test(c);
const literal = (s: string) => [...s].map((c) => (isPunct(c) ? hex(c.codePointAt(0)!) : c)).join("");

/**
 * Translates an RE2 (Go) pattern to a JavaScript RegExp source and flags.
 * @throws Error naming the RE2 feature JavaScript cannot express
 */
export function translateGoRegexp(src: string): { source: string; flags: string } {
  let flags = "u";
  let i = 0;
  const lead = /^\(\?([a-zA-Z]+)\)/.exec(src);
  if (lead) {
    for (const f of lead[1]!) {
      if (f === "U") throw new Error("the U (ungreedy) flag has no JavaScript equivalent");
      if (!"ims".includes(f)) throw new Error(`unknown flag ${f}`);
      if (!flags.includes(f)) flags += f;
    }
    i = lead[0].length;
  }
  let out = "";
  let inClass = false;
  let classStart = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === "\\") {
      const n = src[i + 1];
      if (n === undefined) throw new Error("trailing backslash at end of expression");
      if (n === "Q") {
        const end = src.indexOf("\\E", i + 2);
        out += literal(src.slice(i + 2, end < 0 ? undefined : end));
        i = end < 0 ? src.length : end + 2;
        continue;
      }
      if (n === "p" || n === "P") {
        const m = /^\\([pP])(?:\{(\^?)([A-Za-z_]+)\}|([A-Za-z]))/.exec(src.slice(i));
        if (!m) throw new Error(`invalid character class range ${src.slice(i, i + 4)}`);
        const name = m[3] ?? m[4]!;
        const neg = (m[1] === "P") !== (m[2] === "^");
        out += `\\${neg ? "P" : "p"}{${name === "Any" ? "Any" : CATEGORIES.has(name) ? name : `Script=${name}`}}`;
        i += m[0].length;
        continue;
      }
      if (n === "x" && src[i + 2] === "{") {
        const m = /^\\x\{([0-9a-fA-F]+)\}/.exec(src.slice(i));
        if (!m) throw new Error("invalid escape sequence \\x{");
        out += hex(parseInt(m[1]!, 16));
        i += m[0].length;
        continue;
      }
      if (/[0-7]/.test(n)) {
        const m = /^\\([0-7]{1,3})/.exec(src.slice(i))!;
        if (n !== "0" && m[1]!.length === 1) throw new Error(`invalid escape sequence \\${n} (backreferences are not RE2)`);
        out += hex(parseInt(m[1]!, 8));
        i += m[0].length;
        continue;
      }
      if ((n === "A" || n === "z" || n === "b" || n === "B") && !inClass) {
        out += n === "A" ? "(?:(?<![\\s\\S]))" : n === "z" ? "(?:(?![\\s\\S]))" : `(?:\\${n})`;
        i += 2;
        continue;
      }
      if (n === "C" || n === "Z") throw new Error(`invalid escape sequence \\${n}`);
      out += isPunct(n) ? hex(n.charCodeAt(0)) : `\\${n}`;
      i += 2;
      continue;
    }
    if (inClass) {
      const posix = /^\[:(\^?)([a-z]+):\]/.exec(src.slice(i));
      if (posix) {
        if (posix[1]) throw new Error(`negated class [:^${posix[2]}:] has no JavaScript equivalent`);
        const set = POSIX[posix[2]!];
        if (!set) throw new Error(`invalid character class range [:${posix[2]}:]`);
        out += set;
        i += posix[0].length;
      } else if (c === "]" && i > classStart) {
        out += "]";
        inClass = false;
        i++;
      } else {
        out += c === "[" || c === "]" ? hex(c.charCodeAt(0)) : c;
        i++;
      }
      continue;
    }
    if (c === "[") {
      inClass = true;
      out += "[";
      i++;
      if (src[i] === "^") (out += "^"), i++;
      classStart = i; // a `]` right here is a literal in RE2
      continue;
    }
    if (c === "(" && src.startsWith("(?P<", i)) {
      out += "(?<";
      i += 4;
      continue;
    }
    if (c === "{") {
      const rep = /^\{\d+(,\d*)?\}/.exec(src.slice(i));
      out += rep ? rep[0] : "\\x7b";
      i += rep ? rep[0].length : 1;
      continue;
    }
    // Assertions in a group: RE2 takes a repeated assertion ("^+OK" in blackbox's testdata), JavaScript only a repeated group.
    out += c === "}" || c === "]" ? hex(c.charCodeAt(0)) : c === "^" || c === "$" ? `(?:${c})` : c;
    i++;
  }
  if (inClass) throw new Error("missing closing ]");
  return { source: out, flags };
}

const compiled = new Map<string, RegExp>();

/**
 * The RegExp of an RE2 pattern, compiled once per pattern (bounded cache: patterns come from the
 * probe file).
 * @throws Error when RE2 or JavaScript refuses it
 */
export function goRegexp(src: string): RegExp {
  let re = compiled.get(src);
  if (!re) {
    const { source, flags } = translateGoRegexp(src);
    re = new RegExp(source, flags);
    if (compiled.size > 1024) compiled.clear();
    compiled.set(src, re);
  }
  return re;
}

/** Why `src` is not a usable RE2 pattern here, or "" when it is. */
export function goRegexpError(src: string): string {
  try {
    goRegexp(src);
    return "";
  } catch (e) {
    return (e as Error).message.replace(/^Invalid regular expression: /, "");
  }
}

const enc = new TextEncoder();

/**
 * Go's Regexp.Expand: `template` with $1 / ${1} / $name / ${name} replaced by the groups of
 * `match` (a missing or unmatched group by nothing), $$ by $, and a malformed `$` kept as is. A
 * name is the longest run of letters, digits and `_` (so "$1x" names group "1x", as in Go).
 * Works on bytes: literal parts of the template are kept byte for byte (send may be !!binary).
 */
export function expandTemplate(template: Uint8Array, match: RegExpExecArray): Uint8Array {
  const t = Buffer.from(template);
  const parts: Uint8Array[] = [];
  let i = 0;
  for (;;) {
    const dollar = t.indexOf(0x24, i);
    if (dollar < 0) break;
    parts.push(t.subarray(i, dollar));
    i = dollar + 1;
    if (t[i] === 0x24) {
      parts.push(t.subarray(i, i + 1));
      i++;
      continue;
    }
    // Letters and digits as Go's unicode.IsLetter / IsDigit; invalid UTF-8 decodes to U+FFFD, no name character.
    const ref = /^(?:\{([\p{L}\p{Nd}_]+)\}|([\p{L}\p{Nd}_]+))/u.exec(t.subarray(i).toString("utf8"));
    if (!ref) {
      parts.push(t.subarray(dollar, dollar + 1));
      continue;
    }
    const name = ref[1] ?? ref[2]!;
    i += Buffer.byteLength(ref[0]);
    const num = /^(0|[1-9]\d{0,7})$/.test(name) ? Number(name) : -1;
    const value = num >= 0 ? match[num] : match.groups?.[name];
    if (value !== undefined) parts.push(enc.encode(value));
  }
  parts.push(t.subarray(i));
  return Buffer.concat(parts);
}
