/** Target address syntax shared by the kinds' probe-file validation. */
import { isIP } from "node:net";

const HOSTNAME = /^(?=.{1,253}$)([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)*\.?$/;

/** True for an IPv4/IPv6 literal or a syntactically valid host name (RFC 1123 labels; `_` allowed). */
export function isHostOrIp(s: string): boolean {
  return isIP(s) !== 0 || (HOSTNAME.test(s) && !/^[0-9.]+$/.test(s));
}
