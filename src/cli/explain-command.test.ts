// `concord explain` over a fake explain function (the data comes from explain-contact.int.test.ts):
// output, --json, --as-of, exit codes and help.
import { Command, CommanderError } from "commander";
import { describe, expect, it } from "vitest";
import { formatExplanation, type ExplainResult, type Explanation } from "../explain/explain-contact";
import { registerExplainCommand } from "./explain-command";
import { EXIT_OK, EXIT_PROBLEM, EXIT_USAGE } from "./exit-codes";

const EVT = "evt_abcdefghijklmnopqrstuvwxyz234567";
const DESCRIPTION =
  "2026-03-01 10:00:00Z opt-out of all email in cc-main (Constant Contact, by the contact, unsubscribe link)";

const decision = {
  scope: { kind: "global" as const },
  scope_label: "all email",
  sendable: false,
  status: "opted_out" as const,
  rule: "global_opt_out" as const,
  rule_explanation: "An opt-out from all email is in force.",
  decided_by: { event_id: EVT, description: DESCRIPTION },
  open_opt_outs: [{ event_id: EVT, description: DESCRIPTION, initiated_by: "contact" as const }],
  pending_resubscribe: null,
};

const ada: Explanation = {
  contact: {
    id: "con_ada",
    type: "person",
    name: "Ada Lovelace",
    given_name: "Ada",
    family_name: "Lovelace",
    organization_name: null,
    primary_email: "ada@example.org",
    other_emails: [],
    flags: [],
    created_at: "2026-01-01T00:00:00.000Z",
  },
  matched_by: "primary_email",
  pairs: [
    {
      pair_id: "re-cc",
      crm_connection: "re-nxt",
      require_consent_basis: false,
      connections: [
        {
          connection_id: "cc-main",
          system: "constant-contact",
          role: "platform",
          construct: null,
          left_list_since: null,
          ...decision,
        },
      ],
    },
  ],
  scopes: [decision],
  deliverability: { status: "deliverable", since: null, decided_by: null },
  timeline: [
    {
      event_id: EVT,
      kind: "opt_out",
      channel: "email",
      scope: { kind: "global" },
      scope_label: "all email",
      occurred_at: "2026-03-01T10:00:00.000Z",
      observed_at: "2026-03-01T10:01:00.000Z",
      recorded_at: "2026-03-01T10:01:01.000Z",
      source: { system: "constant-contact", connection: "cc-main", system_label: "Constant Contact" },
      mechanism: "unsubscribe_link",
      mechanism_label: "unsubscribe link",
      actor: { kind: "contact" },
      actor_label: "by the contact",
      initiated_by: "contact",
      basis: null,
      expires_at: null,
      deliverability_status: null,
      evidence: {},
      evidence_erased_at: "2026-05-01T00:00:00.000Z",
      evidence_summary: "evidence erased on 2026-05-01 00:00:00Z (digest 0123456789ab kept)",
      ledger: { seq: 7, hash: "f".repeat(64), hash_prefix: "ffffffffffff" },
      counted: true,
      description: DESCRIPTION,
    },
  ],
  links: [],
  review_items: [],
  recent_operations: [],
};

const FOUND: ExplainResult = {
  kind: "found",
  email: "ada@example.org",
  match_key: "ada@example.org",
  as_of: "2026-06-01T12:00:00.000Z",
  as_of_requested: false,
  shared_address_note: null,
  people: [ada],
};

function run(result: ExplainResult) {
  const out: string[] = [];
  const err: string[] = [];
  const calls: { email: string; options: { as_of?: string } }[] = [];
  let code: number | undefined;
  const program = new Command("concord").exitOverride().configureOutput({
    writeOut: (s) => out.push(s),
    writeErr: (s) => err.push(s),
  });
  registerExplainCommand(program, {
    explain: async (email, options) => {
      calls.push({ email, options });
      return result;
    },
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    setExitCode: (c) => {
      code = c;
    },
  });
  return {
    out,
    err,
    calls,
    code: () => code,
    parse: (args: string[]) => program.parseAsync(["explain", ...args], { from: "user" }),
    program,
  };
}

describe("concord explain", () => {
  it("prints the report, state first, and exits 0 when found", async () => {
    const r = run(FOUND);
    await r.parse(["ada@example.org"]);
    expect(r.code()).toBe(EXIT_OK);
    expect(r.calls).toEqual([{ email: "ada@example.org", options: {} }]);
    const text = r.out.join("\n");
    expect(text).toMatch(/cc-main \(all email\)\s+NOT SENDABLE {2}rule global_opt_out — decided by evt_abc/);
    expect(text).toContain(DESCRIPTION);
    expect(r.err).toEqual([]);
  });

  it("--json prints exactly one JSON document, the result", async () => {
    const r = run(FOUND);
    await r.parse(["ada@example.org", "--json"]);
    expect(r.out).toHaveLength(1);
    expect(JSON.parse(r.out[0] ?? "")).toEqual(FOUND);
    expect(r.code()).toBe(EXIT_OK);
  });

  it("--as-of is checked and passed on as ISO-8601 UTC; a date alone means the end of that day", async () => {
    const r = run(FOUND);
    await r.parse(["ada@example.org", "--as-of", "2026-03-01T12:00:00+02:00"]);
    await r.parse(["ada@example.org", "--as-of", "2026-03-01"]);
    expect(r.calls.map((c) => c.options)).toEqual([
      { as_of: "2026-03-01T10:00:00.000Z" },
      { as_of: "2026-03-01T23:59:59.999Z" },
    ]);
  });

  it("a bad --as-of is a usage error before anything is looked up", async () => {
    const r = run(FOUND);
    const error = await r.parse(["ada@example.org", "--as-of", "last tuesday"]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommanderError);
    expect(r.err.join("")).toContain("expected an ISO-8601 time");
    expect(r.calls).toEqual([]);
  });

  it.each([
    [
      "not found",
      {
        kind: "not_found",
        email: "nobody@example.org",
        match_key: "nobody@example.org",
        as_of: "2026-06-01T12:00:00.000Z",
        message: "No contact has nobody@example.org as a primary or secondary address.",
      },
      EXIT_PROBLEM,
      "No contact has nobody@example.org",
    ],
    [
      "an invalid address",
      {
        kind: "invalid_email",
        email: "nope",
        reason: "missing_at",
        message: '"nope" is not an email address',
      },
      EXIT_USAGE,
      "is not an email address",
    ],
  ] satisfies [string, ExplainResult, number, string][])(
    "%s: a message on stderr, nothing on stdout, its exit code; --json prints the result",
    async (_name, result, exit, message) => {
      const r = run(result);
      await r.parse(["someone"]);
      expect(r.code()).toBe(exit);
      expect(r.out).toEqual([]);
      expect(r.err.join("\n")).toContain(message);

      const j = run(result);
      await j.parse(["someone", "--json"]);
      expect(j.code()).toBe(exit);
      expect(j.out).toHaveLength(1);
      expect(JSON.parse(j.out[0] ?? "")).toEqual(result);
    },
  );

  it("--help names the argument and both options", () => {
    const r = run(FOUND);
    const help = r.program.commands.find((c) => c.name() === "explain")?.helpInformation() ?? "";
    expect(help).toContain("explain [options] <email>");
    expect(help).toContain("--json");
    expect(help).toContain("--as-of <iso>");
  });
});

describe("formatExplanation", () => {
  it("shows the rule and the deciding event, then the timeline with ledger place and erased evidence", () => {
    const text = formatExplanation(FOUND);
    expect(text).toContain("rule global_opt_out");
    expect(text).toContain(`decided by ${EVT}`);
    expect(text).toContain("An opt-out from all email is in force.");
    expect(text).toContain("ledger seq 7, hash ffffffffffff");
    expect(text).toContain("evidence: evidence erased on 2026-05-01 00:00:00Z");
    expect(text).toContain("Linked records: none.");
  });

  it("says what is wrong for the other kinds", () => {
    expect(
      formatExplanation({ kind: "invalid_as_of", as_of: "x", message: "expected an ISO-8601 time" }),
    ).toBe("--as-of: expected an ISO-8601 time");
    expect(
      formatExplanation({
        kind: "not_found",
        email: "a@b.org",
        match_key: "a@b.org",
        as_of: "2026-06-01T12:00:00.000Z",
        message: "No contact has a@b.org as a primary or secondary address.",
      }),
    ).toContain("Nothing is known about this address");
  });
});
