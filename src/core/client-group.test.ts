import { describe, expect, it } from "vitest";
import { clientGroup } from "./client-group";

describe("clientGroup", () => {
  it("counts IPv4 by address (a forwarded port dropped), IPv6 by its /64, anything else in one group", () => {
    expect(clientGroup("203.0.113.7")).toBe("203.0.113.7");
    expect(clientGroup("203.0.113.7:5678")).toBe("203.0.113.7");
    expect(clientGroup("::ffff:203.0.113.7")).toBe("203.0.113.7");
    expect(clientGroup("2001:db8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
    expect(clientGroup("2001:DB8:1:2::ffff")).toBe("2001:db8:1:2::/64");
    expect(clientGroup("[2001:db8:1:2::1]:443")).toBe("2001:db8:1:2::/64");
    expect(clientGroup("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(clientGroup("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(clientGroup("::1")).toBe("0:0:0:0::/64");
    expect(clientGroup("not an address")).toBe("unknown");
    expect(clientGroup("1.2.3.4:5678, 5.6.7.8")).toBe("unknown");
  });
});
