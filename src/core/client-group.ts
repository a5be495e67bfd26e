/**
 * Where a client counts for a limit (failed sign-ins, sign-up requests): an IPv4 address, or the
 * /64 of an IPv6 one (one household or server has a whole /64, and could otherwise buy itself
 * fresh addresses without end).
 */
import { isIP } from "node:net";

/** The group a client address counts in: the IPv4 address, or the /64 of an IPv6 one. */
export function clientGroup(address: string): string {
  let a = address.trim().toLowerCase();
  // A port some proxies forward with the address: `1.2.3.4:5678`, `[2001:db8::1]:443`.
  const v4port = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(a);
  if (v4port?.[1] !== undefined) a = v4port[1];
  const v6port = /^\[([^\]]+)\](?::\d+)?$/.exec(a);
  if (v6port?.[1] !== undefined) a = v6port[1];
  a = a.replace(/%.*$/, ""); // a zone (fe80::1%eth0)
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped?.[1] !== undefined) return mapped[1];
  if (isIP(a) === 4) return a;
  // Anything else that is not an address shares one group: it cannot buy itself fresh ones.
  if (isIP(a) !== 6) return "unknown";
  const [head = "", tail = ""] = a.split("::", 2);
  const left = head === "" ? [] : head.split(":");
  const right = a.includes("::") ? (tail === "" ? [] : tail.split(":")) : [];
  const groups = a.includes("::")
    ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => (g === "" ? "0" : g.replace(/^0+(?=.)/, "")))
    .join(":")}::/64`;
}
