/**
 * RE2 (Go) `expect` patterns as the tcp kind matches them in JavaScript (lib/probes/regexp.ts),
 * and Go's Regexp.Expand for `send` templates. Expected values are what Go's regexp package does
 * with the same pattern and input.
 */
import { describe, expect, test } from "bun:test";
import { expandTemplate, goRegexp, goRegexpError } from "../lib/probes/regexp.ts";

const matches = (re: string, s: string) => goRegexp(re).test(s);

describe("RE2 patterns", () => {
  test("blackbox's example expects match as in Go", () => {
    expect(matches("^220 ([^ ]+) ESMTP (.+)$", "220 mail.test ESMTP Postfix")).toBe(true);
    expect(matches("^SSH-2.0-", "SSH-2.0-OpenSSH_9.6")).toBe(true);
    expect(matches("^SSH-2.0-", "xSSH-2.0-")).toBe(false);
    // "^+OK" (blackbox-good.yml's pop3s_banner): a repeated assertion, which RE2 takes and a plain JavaScript /u RegExp refuses.
    expect(matches("^+OK", "+OK POP3 ready")).toBe(false);
    expect(matches("^+OK", "OK POP3 ready")).toBe(true);
    expect(matches("OK.*STARTTLS", "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready")).toBe(true);
  });

  test("RE2 spellings JavaScript lacks are translated", () => {
    expect(goRegexp("(?P<host>[a-z.]+)").exec("mail.test")?.groups?.host).toBe("mail.test");
    expect(matches("(?i)^ehlo", "EHLO x")).toBe(true);
    expect(matches("^ehlo", "EHLO x")).toBe(false);
    expect(matches("(?s)a.b", "a\nb")).toBe(true);
    expect(matches("\\Aabc\\z", "abc")).toBe(true);
    expect(matches("\\Aabc\\z", "abcd")).toBe(false);
    expect(matches("\\Qa.b*\\E$", "xa.b*")).toBe(true);
    expect(matches("\\Qa.b*\\E", "aXbb")).toBe(false);
    expect(matches("^[[:digit:]]{3}[[:space:]]", "220 x")).toBe(true);
    expect(matches("^[[:alpha:]]+$", "ab1")).toBe(false);
    expect(matches("\\pL\\p{Greek}", "aλ")).toBe(true);
    expect(matches("\\x{263a}", "☺")).toBe(true);
    expect(matches("\\101", "A")).toBe(true); // octal
    expect(matches("^250\\-AUTH\\:", "250-AUTH:")).toBe(true); // escaped punctuation
    expect(matches('^{"ok":', '{"ok":true}')).toBe(true); // `{` starting no repetition is a literal
    expect(matches("^a{2}$", "aa")).toBe(true);
    expect(matches("[]a]+$", "]a")).toBe(true); // leading ] in a class
    expect(matches("^a]$", "a]")).toBe(true);
  });

  test("patterns RE2 refuses, or JavaScript cannot express, are refused with the reason", () => {
    expect(goRegexpError(":[")).toMatch(/closing \]/);
    expect(goRegexpError("(a)\\1")).toMatch(/backreference/);
    expect(goRegexpError("(?U)a+")).toMatch(/U \(ungreedy\)/);
    expect(goRegexpError("[[:^alpha:]]")).toMatch(/negated class/);
    expect(goRegexpError("a(")).not.toBe("");
    expect(goRegexpError("^220 ")).toBe("");
  });
});

describe("send templates (Go's Regexp.Expand)", () => {
  const expand = (template: string, re: string, line: string) => Buffer.from(expandTemplate(Buffer.from(template), goRegexp(re).exec(line)!)).toString();

  test("numbered and named groups, braces, $$ and malformed references", () => {
    expect(expand("PONG ${1}", "PING :([^ ]+)", "PING :abc123")).toBe("PONG abc123");
    expect(expand("PONG $1", "PING :([^ ]+)", "PING :abc123")).toBe("PONG abc123");
    expect(expand("PONG ${tok}!", "PING :(?P<tok>[^ ]+)", "PING :abc")).toBe("PONG abc!");
    expect(expand("$1x|${1}x", "(a)", "a")).toBe("|ax"); // "$1x" names group "1x", which does not exist
    expect(expand("cost $$5 $ ${ ${1", "(a)", "a")).toBe("cost $5 $ ${ ${1");
    expect(expand("$0-$2", "(a)(b)?", "a")).toBe("a-"); // an unmatched group is empty
    expect(expand("${10}", "(a)", "a")).toBe("");
  });

  test("literal bytes of a binary template are kept byte for byte", () => {
    const t = Buffer.from([0xd2, 0x16, 0x24, 0x31, 0xff]);
    expect(Buffer.from(expandTemplate(t, goRegexp("(z)").exec("z")!))).toEqual(Buffer.from([0xd2, 0x16, 0x7a, 0xff]));
  });
});
