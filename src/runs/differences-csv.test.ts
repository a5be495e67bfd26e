import { parse } from "csv-parse/sync";
import { describe, expect, it } from "vitest";
import { differencesCsv } from "./differences-csv";
import { spreadsheetSafe } from "../core/spreadsheet-safe";

describe("spreadsheetSafe", () => {
  it("quotes what a spreadsheet would run as a formula, and nothing else", () => {
    for (const formula of ["=1+1", "+44 20", "-2+3", "@SUM(A1)", "\t=x", "\r=x"])
      expect(spreadsheetSafe(formula)).toBe(`'${formula}`);
    for (const text of ["ada@example.org", "", "1+1", '{"a":1}', "a=b"])
      expect(spreadsheetSafe(text)).toBe(text);
  });

  it("a reconciliation's CSV carries an address that looks like a formula as text", () => {
    const csv = differencesCsv([
      {
        pair_id: "re-cc",
        differences: [
          {
            email: "=HYPERLINK(1)@example.org",
            contact_id: "con_1",
            connection_id: "cc-main",
            scope: { kind: "global" },
            kind: "not_unsubscribed",
            fixable: true,
            system_shows: "subscribed",
            rules_say: "opted out",
            cause: "@cause",
          } as never,
        ],
      },
    ]);
    const [row] = parse<Record<string, string>>(csv, { columns: true });
    expect(row?.["email"]).toBe("'=HYPERLINK(1)@example.org");
    expect(row?.["cause"]).toBe("'@cause");
    expect(row?.["connection_id"]).toBe("cc-main");
  });
});
