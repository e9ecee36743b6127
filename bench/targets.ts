/** N distinct loopback addresses 127.1.0.0, 127.1.0.1, ... (127.0.0.0/8 is all local on Linux). */
export function loopbackTargets(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`127.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`);
  return out;
}
