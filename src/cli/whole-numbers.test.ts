import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { parsePort, parseWholeNumber } from "./whole-numbers";

describe("whole numbers on the command line", () => {
  it("takes decimal digits within the bounds", () => {
    expect(parsePort("8080")).toBe(8080);
    expect(parsePort("0")).toBe(0);
    expect(parsePort("65535")).toBe(65_535);
    expect(parseWholeNumber("007", { min: 0, max: 10, what: "a count" })).toBe(7);
  });

  it("refuses what Number() would read as some other number, saying what was expected", () => {
    // 0x50 is 80 to Number(), 1e3 is 1000 and a blank is 0: each would start Concord on a port
    // nobody typed.
    for (const value of ["0x50", "1e3", "", " 80", "80 ", "+80", "-1", "80.0", "Infinity", "8_080"]) {
      expect(() => parsePort(value), value).toThrow(InvalidArgumentError);
    }
    expect(() => parsePort("0x50")).toThrow(
      'expected a port number from 0 to 65535 in decimal digits, got "0x50"',
    );
    expect(() => parsePort("65536")).toThrow("from 0 to 65535");
  });

  it("lets digit separators through only where asked, and only between digits", () => {
    const size = { min: 10, max: 100_000, what: "a number of constituents", separators: true };
    expect(parseWholeNumber("10_000", size)).toBe(10_000);
    expect(parseWholeNumber("10,000", size)).toBe(10_000);
    for (const value of ["_100", "100_", "1__00", ",100", "0x100"]) {
      expect(() => parseWholeNumber(value, size), value).toThrow(InvalidArgumentError);
    }
    expect(() => parseWholeNumber("10_000", { min: 0, max: 100_000, what: "a count" })).toThrow(
      'expected a count from 0 to 100000 in decimal digits, got "10_000"',
    );
  });
});
