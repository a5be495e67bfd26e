/**
 * Raiser's Edge NXT calls per constituent of a full read. The Customer tier allows 25,000 calls a
 * day, so what a first sync (or a scheduled full re-read) costs per constituent decides how large a
 * database fits a day. A full read takes email addresses and relationships from SKY's
 * all-constituents lists; what SKY serves only one constituent at a time (the record's
 * requests_no_email, consent records, solicit codes) still costs a call each. The reference is the
 * connector's constituent-by-constituent read (`get`, the path of webhooks and re-reads, and what
 * a full read cost before the bulk lists), measured in the same run on a sample of the same tenant.
 *
 * The connector runs unchanged against the emulator over real HTTP, on a fake clock: SKY's rate
 * limit is waited out in emulated time, so the figures are call counts, not speeds.
 */
import { blackbaudRenxtManifest } from "../src/connectors/blackbaud-renxt/manifest";
import type { ConnectorSession } from "../src/connectors/connector";
import { startEmulatorFixture, type EmulatorFixture } from "../test/support/connectors/blackbaud-renxt";
import type { BenchContext, BenchResult } from "./bench-kit";

export const name = "renxt-reads";

const SIZES = { full: 10_000, smoke: 300 };
/** Constituents the reference reads one by one (all of them in a smoke run). */
const SAMPLE = 1_000;
const SEED_PAGE = 5_000;
const CUSTOMER_TIER_DAILY_CALLS = 25_000;

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const n = ctx.smoke ? SIZES.smoke : SIZES.full;
  const f = await startEmulatorFixture("2026-03-02T12:00:00.000Z", { dailyQuota: 0 });
  try {
    const ids = await seedTenant(f, n);
    ctx.log(`seeded ${n} constituents`);
    // Read two hours later, as most of an organisation's records were saved: a constituent saved
    // within the all-constituents lists' lag is read from its own record instead.
    f.clock.advance(2 * 3600_000);

    const full = await countCalls(f, () => readAll(connect(f, {})));
    const lean = await countCalls(f, () =>
      readAll(connect(f, { read: { consents: false }, opt_out_solicit_codes: [] })),
    );
    const sample = ids.slice(0, Math.min(SAMPLE, n));
    const oneByOne = await countCalls(f, async () => {
      const r = await connect(f, {}).get(sample);
      if (!r.ok) throw new Error(`read one by one: ${r.error.message}`);
      return r.value.records.length;
    });
    if (full.records !== n || lean.records !== n || oneByOne.records !== sample.length)
      throw new Error(
        `reads returned ${full.records}, ${lean.records} and ${oneByOne.records} of ${n}, ${n} and ${sample.length} constituents`,
      );

    const perFull = full.calls / n;
    const perLean = lean.calls / n;
    const perOne = oneByOne.calls / sample.length;
    ctx.log(
      `full read: ${full.calls} calls (${perFull.toFixed(3)} a constituent); without consent records and solicit codes: ${lean.calls} (${perLean.toFixed(3)}); one by one: ${perOne.toFixed(3)}`,
    );
    const fits = (perConstituent: number): number => Math.floor(CUSTOMER_TIER_DAILY_CALLS / perConstituent);
    const setup =
      `${n.toLocaleString("en")} constituents: 90% individuals with a primary email (a third also an inactive old one), half with a consent record, ` +
      `a fifth of them contacts of the 10% organisations; the tenant's Solicit Codes table has the configured opt-out codes; ` +
      `the one-by-one reference read ${sample.length.toLocaleString("en")} of them. OAuth token calls are not API calls and are left out.`;
    return [
      {
        name: "Raiser's Edge NXT full read: calls per constituent",
        value: round3(perFull),
        unit: "calls",
        reference: { name: "reading constituent by constituent", value: round3(perOne), unit: "calls" },
        ratio: round3(perFull / perOne),
        better: "lower",
        notes:
          `${full.calls} calls: ${full.breakdown}. Per constituent SKY serves the record (a list item has no requests_no_email), consent records and solicit codes only one at a time. ` +
          `A 25,000-call day reads ${fits(perFull).toLocaleString("en")} constituents (one by one: ${fits(perOne).toLocaleString("en")}). One by one: ${oneByOne.breakdown}. ${setup}`,
      },
      {
        name: "Raiser's Edge NXT full read without consent records and solicit codes: calls per constituent",
        value: round3(perLean),
        unit: "calls",
        reference: { name: "reading constituent by constituent", value: round3(perOne), unit: "calls" },
        ratio: round3(perLean / perOne),
        better: "lower",
        notes:
          `Options read.consents: false and opt_out_solicit_codes: [] (a tenant that keeps consent in requests_no_email and email do_not_email only). ` +
          `${lean.calls} calls: ${lean.breakdown}. A 25,000-call day reads ${fits(perLean).toLocaleString("en")} constituents.`,
      },
    ];
  } finally {
    await f.close();
  }
}

function connect(f: EmulatorFixture, options: Record<string, unknown>): ConnectorSession {
  // Concord's own budget is opened wide: the figure is calls, and the fake clock makes waiting free.
  const limits = { requests_per_second: 1000, daily_quota: 10_000_000 };
  return blackbaudRenxtManifest.connect({ ...f.settings(), limits, options }, f.runtime);
}

async function readAll(session: ConnectorSession): Promise<number> {
  let records = 0;
  for await (const page of session.read(null, { full: true })) {
    if (!page.ok) throw new Error(`full read: ${page.error.code}: ${page.error.message}`);
    records += page.value.records.length;
  }
  return records;
}

/** The SKY API calls `fn` makes (OAuth token calls left out), by kind. */
async function countCalls(
  f: EmulatorFixture,
  fn: () => Promise<number>,
): Promise<{ records: number; calls: number; breakdown: string }> {
  const before = f.emu.kit.requests.length;
  const records = await fn();
  const paths = f.emu.kit.requests
    .slice(before)
    .map((r) => r.path)
    .filter((p) => !p.startsWith("/oauth2/"));
  const kinds = new Map<string, number>();
  for (const p of paths) {
    const kind = p.replace(/\?.*$/, "").replace(/\/\d+(?=\/|$)/g, "/{id}");
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  const breakdown = [...kinds]
    .sort((a, b) => b[1] - a[1])
    .map(([kind, count]) => `${count.toLocaleString("en")} GET ${kind}`)
    .join(", ");
  return { records, calls: paths.length, breakdown };
}

/** 90% individuals, 10% organisations; a fifth of the individuals are an organisation's contact. */
async function seedTenant(f: EmulatorFixture, n: number): Promise<string[]> {
  const organisations = Math.max(1, Math.floor(n / 10));
  const people = n - organisations;
  const ids: string[] = [];
  const all = [
    ...Array.from({ length: people }, (_, i) => ({
      type: "Individual",
      first: `First${i}`,
      last: `Last${i}`,
      email: { address: `person${i}@example.org`, type: "Email" },
      email_addresses:
        i % 3 === 0
          ? [{ address: `old${i}@example.org`, type: "Email", primary: false, inactive: true }]
          : [],
      consents:
        i % 2 === 0
          ? [
              {
                channel: "Email",
                category: "Newsletter",
                consent_date: "2025-06-01T10:00:00Z",
                constituent_consent_response: i % 4 === 0 ? "OptOut" : "OptIn",
              },
            ]
          : [],
    })),
    ...Array.from({ length: organisations }, (_, i) => ({ type: "Organization", name: `Organisation ${i}` })),
  ];
  for (let from = 0; from < all.length; from += SEED_PAGE) {
    const seeded = (await f.control("/__emulator/seed", {
      constituents: all.slice(from, from + SEED_PAGE),
    })) as {
      constituents: { id: string }[];
    };
    ids.push(...seeded.constituents.map((c) => c.id));
  }
  const contacts = Array.from({ length: Math.floor(people / 5) }, (_, k) => ({
    constituent_id: ids[k * 5],
    relation_id: ids[people + (k % organisations)],
    type: "Employee",
    reciprocal_type: "Employer",
    is_organization_contact: true,
  }));
  for (let from = 0; from < contacts.length; from += SEED_PAGE)
    await f.control("/__emulator/seed", { relationships: contacts.slice(from, from + SEED_PAGE) });
  return ids;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
