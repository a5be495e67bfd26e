/** Tests for canonical JSON: key order never matters, lossy values are refused. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalJson } from "./canonical-json";

describe("canonicalJson", () => {
  it.each<[string, unknown, string]>([
    ["null", null, "null"],
    ["booleans", [true, false], "[true,false]"],
    ["numbers", [0, -0, 1.5, -2e-7, 1e21], "[0,0,1.5,-2e-7,1e+21]"],
    ["strings with escapes", 'a"b\\c\n\u2028é', JSON.stringify('a"b\\c\n\u2028é')],
    [
      "keys sorted at every depth",
      { b: 1, a: { d: [{ z: 1, y: 2 }], c: null } },
      '{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}',
    ],
    ["keys by code unit", { b: 1, B: 2, "10": 3, "9": 4, é: 5 }, '{"10":3,"9":4,"B":2,"b":1,"é":5}'],
    ["undefined properties dropped", { a: undefined, b: 1 }, '{"b":1}'],
    ["undefined in arrays is null", [undefined, () => 1], "[null,null]"],
    ["toJSON is honoured", { at: new Date(Date.UTC(2024, 0, 1)) }, '{"at":"2024-01-01T00:00:00.000Z"}'],
    ["null-prototype objects", Object.assign(Object.create(null) as object, { b: 2, a: 1 }), '{"a":1,"b":2}'],
    [
      "a shared (not cyclic) reference",
      (() => {
        const s = { x: 1 };
        return { a: s, b: s };
      })(),
      '{"a":{"x":1},"b":{"x":1}}',
    ],
  ])("%s", (_name, value, expected) => {
    expect(canonicalJson(value)).toBe(expected);
  });

  it.each<[string, unknown]>([
    ["undefined", undefined],
    ["a function", () => 1],
    ["a bigint", { n: 1n }],
    ["NaN", [NaN]],
    ["Infinity", { x: Infinity }],
    ["a Map", new Map([["a", 1]])],
    ["a Set", new Set([1])],
    [
      "a class instance",
      new (class Point {
        x = 1;
      })(),
    ],
    [
      "a cycle",
      (() => {
        const o: Record<string, unknown> = {};
        o.self = o;
        return o;
      })(),
    ],
  ])("refuses %s", (_name, value) => {
    expect(() => canonicalJson(value)).toThrow(TypeError);
  });

  it("agrees with JSON.parse and ignores key order", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const s = canonicalJson(value);
        expect(JSON.parse(s)).toEqual(JSON.parse(JSON.stringify(value)));
        const reversed = JSON.parse(JSON.stringify(value), (_k, v: unknown) =>
          v && typeof v === "object" && !Array.isArray(v)
            ? Object.fromEntries(Object.entries(v).reverse())
            : v,
        ) as unknown;
        expect(canonicalJson(reversed)).toBe(s);
      }),
      { numRuns: 1000 },
    );
  });
});
