import { describe, expect, it } from "vitest";
import { isAddressInUse, listenFailure } from "./listen-failure";

const coded = (code: string, message = ""): Error => Object.assign(new Error(message), { code });

describe("why a server could not listen", () => {
  it("names the port a process may not open, and what to change", () => {
    expect(listenFailure(coded("EACCES"), "0.0.0.0", 80)).toBe(
      "could not listen on 0.0.0.0:80: this user may not open that port (ports below 1024 need privileges); choose another with --port (or PORT)",
    );
  });

  it("names a host that is not this machine's, however the lookup failed", () => {
    for (const code of ["EADDRNOTAVAIL", "ENOTFOUND", "EAI_AGAIN"])
      expect(listenFailure(coded(code), "concord.example", 8080)).toBe(
        "could not listen on concord.example:8080: that host is not an address of this machine; choose another with --host (or HOST), e.g. 127.0.0.1 or 0.0.0.0",
      );
  });

  it("writes an IPv6 host in brackets, and gives an unknown failure's own message", () => {
    expect(listenFailure(coded("EMFILE", "too many open files"), "::1", 8080)).toBe(
      "could not listen on [::1]:8080: too many open files",
    );
    expect(listenFailure("not an error", "127.0.0.1", 8080)).toBe(
      "could not listen on 127.0.0.1:8080: not an error",
    );
  });

  it("tells a taken port from other failures", () => {
    expect(isAddressInUse(coded("EADDRINUSE"))).toBe(true);
    expect(isAddressInUse(coded("EACCES"))).toBe(false);
    expect(isAddressInUse(new Error("EADDRINUSE"))).toBe(false);
  });
});
