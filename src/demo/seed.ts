/**
 * The demo's world, generated from a seed so every run starts the same: the CRM's people and
 * organisations (consent histories, opt-out flags, lists, a few without or with broken email
 * addresses) and two email-platform accounts that already hold some contacts, in the emulated
 * world's canonical terms (each emulator turns them into its own seed shapes), plus the model the
 * activity simulator uses.
 */
import type {
  WorldConsentRecord,
  WorldContact,
  WorldPerson,
  WorldSeed,
} from "../connectors/emulator-kit/world";
import { createRandom, type Random } from "./random";

/** The default seed: the same world on every machine. */
export const DEMO_RANDOM_SEED = 20_260_601;

/** The shares of the generated world (of all constituents unless said otherwise). */
export const DEMO_SHARES = {
  organisations: 0.08,
  without_email: 0.03,
  /** Addresses Raiser's Edge accepts (`^[^\s@]+@[^\s@]+\.[^\s@]+$`) that no mailbox can have. */
  invalid_email: 0.01,
  /** People the CRM flags as opted out of all email. */
  opted_out_of_all_email: 0.04,
  deceased: 0.007,
  inactive: 0.015,
  /** Addresses the CRM flags not to be emailed. */
  address_opted_out: 0.005,
  second_email: 0.05,
  appeals_opt_out: 0.03,
  newsletter_opt_in_record: 0.12,
  events_opt_in_record: 0.05,
  /** Contacts already in the main account before Concord runs, and how many of them are in RE. */
  cc_main_existing: 0.06,
  cc_main_existing_in_re: 0.6,
  cc_appeals_existing: 0.02,
  /** Of the contacts already in an account, how many unsubscribed there before Concord ran. */
  cc_existing_unsubscribed: 0.15,
} as const;

export type ReListKey = "newsletter" | "events" | "appeals" | "major_donors" | "volunteers";

/** Raiser's Edge NXT static constituent lists; the first three are mapped in examples/demo.yaml. */
export const RE_LISTS: readonly { key: ReListKey; id: string; name: string; share: number }[] = [
  { key: "newsletter", id: "6d1f3a52-0c1e-4b8e-9a51-000000000001", name: "Monthly newsletter", share: 0.55 },
  { key: "events", id: "6d1f3a52-0c1e-4b8e-9a51-000000000002", name: "Event invitations", share: 0.22 },
  { key: "appeals", id: "6d1f3a52-0c1e-4b8e-9a51-000000000003", name: "Appeal recipients", share: 0.35 },
  { key: "major_donors", id: "6d1f3a52-0c1e-4b8e-9a51-000000000004", name: "Major donors", share: 0.03 },
  { key: "volunteers", id: "6d1f3a52-0c1e-4b8e-9a51-000000000005", name: "Volunteers", share: 0.05 },
];

export type CcAccountKey = "main" | "appeals";

/** Each Constant Contact account's lists; "Board updates" and "Major gifts" are not mapped. */
export const CC_LISTS: Readonly<
  Record<CcAccountKey, readonly { key: string; list_id: string; name: string }[]>
> = {
  main: [
    { key: "newsletter", list_id: "0b9c2d4e-5f60-4a71-8b82-93a4b5c6d001", name: "Newsletter" },
    { key: "events", list_id: "0b9c2d4e-5f60-4a71-8b82-93a4b5c6d002", name: "Events" },
    { key: "board", list_id: "0b9c2d4e-5f60-4a71-8b82-93a4b5c6d003", name: "Board updates" },
  ],
  appeals: [
    { key: "appeals", list_id: "0b9c2d4e-5f60-4a71-8b82-93a4b5c6d101", name: "Appeals" },
    { key: "major_gifts", list_id: "0b9c2d4e-5f60-4a71-8b82-93a4b5c6d102", name: "Major gifts" },
  ],
};

/** What the simulator knows about a constituent (as seeded; it keeps it up to date as it acts). */
export type DemoPerson = {
  re_id: string;
  type: "Individual" | "Organization";
  first: string;
  last: string;
  /** The primary address as Raiser's Edge holds it, or null. */
  email: string | null;
  /** False for an address Raiser's Edge accepted but no platform will. */
  email_valid: boolean;
  lists: ReListKey[];
  /** Flagged in the CRM as opted out of all email. */
  opted_out_of_all_email: boolean;
  deceased: boolean;
  inactive: boolean;
  /** The primary address is flagged not to be emailed. */
  address_opted_out: boolean;
  appeals_opt_out: boolean;
};

/** A contact seeded into a Constant Contact account. */
export type DemoCcContact = {
  account: CcAccountKey;
  contact_id: string;
  email: string;
  first: string;
  last: string;
  /** The constituent with the same address, or null for someone only the platform knows. */
  re_id: string | null;
  unsubscribed: boolean;
};

export type DemoWorld = {
  seed: number;
  size: number;
  /** What the CRM holds (people and lists) and what each platform account holds (contacts and lists). */
  crm: Required<Pick<WorldSeed, "people" | "lists">>;
  platforms: Record<CcAccountKey, Required<Pick<WorldSeed, "contacts" | "lists">>>;
  people: DemoPerson[];
  ccContacts: DemoCcContact[];
};

// ------------------------------------------------------------------ names (embedded, invented mix)

// prettier-ignore
const GIVEN_FEMALE = [
  "Ada", "Grace", "Margaret", "Hannah", "Olivia", "Amelia", "Charlotte", "Sophie", "Emily", "Isla", "Chloé",
  "Zoë", "Siobhán", "Aoife", "Fatima", "Aisha", "Mei", "Yuki", "Priya", "Ananya", "Lucía", "María", "Sofia",
  "Ingrid", "Astrid", "Eleanor", "Ruth", "Joan", "Patricia", "Linda", "Barbara", "Susan", "Karen", "Nancy",
  "Deborah", "Rebecca", "Laura", "Rachel", "Claire", "Naomi", "Thandiwe", "Amara", "Nadia", "Leila",
  "Kateřina", "Agnieszka", "Mariana", "Camille", "Élodie", "Freya",
] as const;
// prettier-ignore
const GIVEN_MALE = [
  "Alan", "Edsger", "James", "John", "Robert", "Michael", "William", "David", "Richard", "Thomas", "Daniel",
  "Matthew", "Andrew", "Peter", "Samuel", "Oliver", "Harry", "George", "Jack", "Noah", "Liam", "Ethan",
  "Lucas", "Mateo", "José", "Diego", "Ahmed", "Omar", "Yusuf", "Kwame", "Chidi", "Hiroshi", "Kenji", "Wei",
  "Arjun", "Rahul", "Sven", "Lars", "Piotr", "Tomás", "Seán", "Ciarán", "François", "Luc", "Marco",
  "Giovanni", "Nikolai", "Dmitri", "Emeka", "Tariq",
] as const;
// prettier-ignore
const FAMILY = [
  "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "García", "Rodríguez", "Wilson",
  "Martínez", "Anderson", "Taylor", "Thomas", "Hernández", "Moore", "Martin", "Jackson", "Thompson", "White",
  "López", "Lee", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
  "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts", "Carter",
  "Phillips", "Evans", "Turner", "Parker", "Collins", "Edwards", "Stewart", "Morris", "Murphy", "O'Brien",
  "O'Connor", "MacDonald", "McKenzie", "Fitzgerald", "Nguyen", "Tran", "Kim", "Park", "Chen", "Wang", "Li",
  "Zhang", "Tanaka", "Suzuki", "Sato", "Patel", "Shah", "Singh", "Kumar", "Okafor", "Mensah", "Diallo",
  "Haddad", "Khan", "Hussain", "Novak", "Kowalski", "Nowak", "Müller", "Schmidt", "Schneider", "Fischer",
  "Weber", "Dubois", "Lefèvre", "Rossi", "Russo", "Bianchi", "Santos", "Silva", "Pereira", "Andersson",
  "Johansson", "Nielsen", "Hansen", "Ivanova", "Petrov", "Cohen", "Levi", "Lovelace", "Hopper", "Turing",
  "Dijkstra", "Babbage", "Hamilton", "Kernighan", "Ritchie", "Liskov",
] as const;
const MIDDLE_INITIALS = ["A.", "B.", "C.", "D.", "E.", "J.", "K.", "L.", "M.", "R.", "S.", "T."] as const;
// prettier-ignore
const PREFERRED: Readonly<Record<string, string>> = {
  Margaret: "Peggy", Robert: "Bob", William: "Bill", Richard: "Rick", Thomas: "Tom", Michael: "Mike",
  Patricia: "Pat", Elizabeth: "Liz", Rebecca: "Becky", Deborah: "Deb", Samuel: "Sam", Daniel: "Dan",
  Matthew: "Matt", Andrew: "Andy", Eleanor: "Ellie", Nikolai: "Kolya",
};
// prettier-ignore
const PLACES = [
  "Riverside", "Hillcrest", "Oakwood", "Maple Grove", "Lakeview", "Harbour", "Northfield", "Cedar Valley",
  "Willow Creek", "Stonebridge", "Brookside", "Elmhurst", "Fairview", "Greenwood", "Kingsbridge", "Ashford",
] as const;
// prettier-ignore
const ORG_KINDS = [
  "Community Foundation", "Rotary Club", "Garden Club", "Arts Council", "Food Bank", "Youth League",
  "Historical Society", "Library Friends", "Chamber of Commerce", "Credit Union", "Women's Institute",
  "Medical Practice", "Family Dental", "Bakery", "Hardware", "Books", "Printing Co.", "Builders Ltd",
] as const;
const SAINTS = ["Mary", "Andrew", "Columba", "Brigid", "Francis", "Luke", "Anne", "Patrick"] as const;
// prettier-ignore
const DOMAINS = [
  "example.org", "example.com", "example.net", "mail.example.org", "post.example.com", "inbox.example.net",
] as const;
const CONSENT_SOURCES_OPT_OUT = ["Phone", "Mail", "In person", "Email reply"] as const;
const STAFF = ["Jordan Ellis", "Sam Patel", "RE NXT Admin", "Morgan Reyes"] as const;

// ------------------------------------------------------------------ the generator

const DAY_MS = 86_400_000;

/** Letters a mailbox name can hold: accents dropped, apostrophes and spaces removed. */
export function emailLocalPart(text: string): string {
  return text
    .normalize("NFD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "");
}

type Draft = DemoPerson & {
  title?: string;
  middle?: string;
  preferred?: string;
  gender?: string;
  orgName?: string;
  secondEmail?: string;
  added: number;
  consents: WorldConsentRecord[];
};

/** The demo's world for `size` constituents; the same (size, seed, now) always gives the same world. */
export function generateDemoWorld(options: { size: number; now: Date; seed?: number }): DemoWorld {
  const size = Math.max(1, Math.floor(options.size));
  const seed = options.seed ?? DEMO_RANDOM_SEED;
  const rng = createRandom(seed);
  const now = options.now.getTime();
  const iso = (t: number): string => new Date(t).toISOString();
  const daysAgo = (min: number, max: number): number =>
    now - rng.int(min, max) * DAY_MS - rng.int(0, DAY_MS - 1);
  const count = (share: number, of = size): number => Math.round(share * of);
  const choose = (pool: readonly number[], n: number): Set<number> => new Set(rng.shuffle(pool).slice(0, n));
  const all = Array.from({ length: size }, (_, i) => i);
  const usedEmails = new Set<string>();
  const uniqueEmail = (local: string, domain: string): string => {
    let candidate = `${local}@${domain}`;
    for (let n = 2; usedEmails.has(candidate.toLowerCase()); n += 1) candidate = `${local}${n}@${domain}`;
    usedEmails.add(candidate.toLowerCase());
    return candidate;
  };

  const orgs = choose(all, count(DEMO_SHARES.organisations));
  const individuals = all.filter((i) => !orgs.has(i));
  const withoutEmail = choose(all, count(DEMO_SHARES.without_email));
  const withEmail = all.filter((i) => !withoutEmail.has(i));
  const invalid = choose(withEmail, count(DEMO_SHARES.invalid_email));
  const valid = withEmail.filter((i) => !invalid.has(i));
  const rne = choose(all, count(DEMO_SHARES.opted_out_of_all_email));
  const deceased = choose(individuals, count(DEMO_SHARES.deceased));
  const inactive = choose(
    all.filter((i) => !deceased.has(i)),
    count(DEMO_SHARES.inactive),
  );
  const doNotEmail = choose(valid, count(DEMO_SHARES.address_opted_out));
  const validIndividuals = valid.filter((i) => !orgs.has(i));
  const secondEmail = choose(validIndividuals, count(DEMO_SHARES.second_email));
  const appealsOptOut = choose(
    withEmail.filter((i) => !orgs.has(i)),
    count(DEMO_SHARES.appeals_opt_out),
  );
  const newsletterOptIn = choose(withEmail, count(DEMO_SHARES.newsletter_opt_in_record));
  const eventsOptIn = choose(withEmail, count(DEMO_SHARES.events_opt_in_record));
  const rneRecorded = choose([...rne], Math.ceil(rne.size / 2));
  const listMembers = new Map<ReListKey, Set<number>>();
  for (const list of RE_LISTS) {
    const pool = list.key === "appeals" || list.key === "volunteers" ? individuals : all;
    listMembers.set(list.key, choose(pool, count(list.share)));
  }

  const drafts: Draft[] = all.map((i) => {
    const type = orgs.has(i) ? "Organization" : "Individual";
    const female = rng.chance(0.5);
    const first = type === "Individual" ? rng.pick(female ? GIVEN_FEMALE : GIVEN_MALE) : "";
    const last = type === "Individual" ? rng.pick(FAMILY) : "";
    const orgName = type === "Organization" ? organisationName(rng) : undefined;
    let email: string | null = null;
    if (!withoutEmail.has(i)) {
      if (type === "Organization") {
        const slug = emailLocalPart(orgName ?? "org").slice(0, 24);
        email = uniqueEmail(rng.pick(["info", "office", "hello", "giving", "admin"]), `${slug}.example.org`);
      } else {
        const f = emailLocalPart(first);
        const l = emailLocalPart(last);
        const local = rng.pick([
          `${f}.${l}`,
          `${f}${l}`,
          `${f[0] ?? "x"}${l}`,
          `${f}.${l}${rng.int(1, 99)}`,
          `${f}_${l}`,
        ]);
        email = uniqueEmail(local, rng.pick(DOMAINS));
      }
      if (invalid.has(i)) email = breakAddress(email, rng);
    }
    const added = daysAgo(30, 3650);
    const draft: Draft = {
      re_id: String(280_001 + i),
      type,
      first,
      last,
      email,
      email_valid: email !== null && !invalid.has(i),
      lists: RE_LISTS.filter((l) => listMembers.get(l.key)?.has(i)).map((l) => l.key),
      opted_out_of_all_email: rne.has(i),
      deceased: deceased.has(i),
      inactive: inactive.has(i),
      address_opted_out: doNotEmail.has(i),
      appeals_opt_out: appealsOptOut.has(i),
      added,
      consents: [],
      ...(orgName !== undefined ? { orgName } : {}),
    };
    if (type === "Individual") {
      draft.title = female
        ? rng.pick(["Ms.", "Mrs.", "Dr.", "Miss", "Mx."])
        : rng.pick(["Mr.", "Dr.", "Rev.", "Mx."]);
      draft.gender = rng.chance(0.1) ? "Unknown" : female ? "Female" : "Male";
      if (rng.chance(0.25)) draft.middle = rng.pick(MIDDLE_INITIALS);
      const preferred = PREFERRED[first];
      if (preferred !== undefined && rng.chance(0.6)) draft.preferred = preferred;
    }
    if (secondEmail.has(i)) {
      draft.secondEmail = uniqueEmail(`${emailLocalPart(first)}.${emailLocalPart(last)}`, "work.example.com");
    }
    const staff = (): string => rng.pick(STAFF);
    const consentAt = (min: number, max: number): { at: string; recorded_at: string } => {
      const at = Math.max(added, daysAgo(min, max));
      return { at: iso(at), recorded_at: iso(at + rng.int(0, 3) * DAY_MS) };
    };
    if (newsletterOptIn.has(i))
      draft.consents.push({
        topic: "Newsletter",
        response: "opt_in",
        ...consentAt(200, 1500),
        source: "Web form",
        statement: "Yes, send me the monthly newsletter.",
        entered_by: "Website integration",
      });
    if (eventsOptIn.has(i))
      draft.consents.push({
        topic: "Events",
        response: "opt_in",
        ...consentAt(100, 900),
        source: "Event registration",
        statement: "Tell me about upcoming events.",
        entered_by: staff(),
      });
    if (appealsOptOut.has(i))
      draft.consents.push({
        topic: "Appeals",
        response: "opt_out",
        ...consentAt(20, 700),
        source: rng.pick(CONSENT_SOURCES_OPT_OUT),
        entered_by: staff(),
      });
    if (rneRecorded.has(i))
      draft.consents.push({
        response: "opt_out",
        ...consentAt(10, 600),
        source: rng.pick(CONSENT_SOURCES_OPT_OUT),
        statement: "Asked to receive no email.",
        entered_by: staff(),
      });
    return draft;
  });

  const crmPeople = drafts.map((d): WorldPerson => ({
    id: d.re_id,
    lookup_id: String(Number(d.re_id) - 270_000),
    kind: d.type === "Organization" ? "organisation" : "individual",
    ...(d.type === "Organization"
      ? { organisation_name: d.orgName ?? "Organisation" }
      : {
          first: d.first,
          last: d.last,
          ...(d.title !== undefined ? { title: d.title } : {}),
          ...(d.middle !== undefined ? { middle: d.middle } : {}),
          ...(d.preferred !== undefined ? { preferred_name: d.preferred } : {}),
          ...(d.gender !== undefined ? { gender: d.gender } : {}),
        }),
    added_at: iso(d.added),
    modified_at: iso(Math.min(now - DAY_MS, d.added + rng.int(0, 900) * DAY_MS)),
    ...(d.opted_out_of_all_email ? { opted_out_of_all_email: true } : {}),
    ...(d.deceased ? { deceased: true } : {}),
    ...(d.inactive ? { inactive: true } : {}),
    ...(d.email !== null ? { email: { address: d.email, opted_out: d.address_opted_out } } : {}),
    ...(d.secondEmail !== undefined
      ? { other_emails: [{ address: d.secondEmail, label: "Work Email" }] }
      : {}),
    ...(d.consents.length > 0 ? { consent_records: d.consents } : {}),
  }));

  const lists = RE_LISTS.map((l) => ({
    id: l.id,
    name: l.name,
    description: `${l.name} (demo)`,
    members: drafts.filter((d) => d.lists.includes(l.key)).map((d) => d.re_id),
  }));

  // Contacts the accounts held before Concord: people from RE (some unsubscribed already) and
  // people who signed up on the website and were never entered in RE.
  const ccContacts: DemoCcContact[] = [];
  const ccSeeds: Record<CcAccountKey, WorldContact[]> = { main: [], appeals: [] };
  const listId = (account: CcAccountKey, key: string): string =>
    CC_LISTS[account].find((l) => l.key === key)?.list_id ?? "";
  const addCc = (
    account: CcAccountKey,
    person: { first: string; last: string; email: string; re_id: string | null },
    listKeys: string[],
    unsubscribed: boolean,
  ): void => {
    const created = daysAgo(60, 1500);
    const updated = Math.min(now - DAY_MS, created + rng.int(0, 400) * DAY_MS);
    const contact_id = rng.uuid();
    const mechanism = rng.pick([
      "unsubscribe_link",
      "unsubscribe_link",
      "one_click_header",
      "spam_complaint",
    ] as const);
    ccSeeds[account].push({
      id: contact_id,
      first: person.first,
      last: person.last,
      email: person.email,
      added_by: person.re_id === null ? "contact" : "account",
      added_at: iso(created),
      modified_at: iso(updated),
      subscription: unsubscribed
        ? {
            status: "unsubscribed",
            by: "contact",
            at: iso(updated),
            mechanism,
            ...(mechanism === "unsubscribe_link" && rng.chance(0.5)
              ? { reason: rng.pick(["Too many emails", "No longer interested", "Other"]) }
              : {}),
          }
        : { status: "subscribed", explicit: person.re_id === null, since: iso(created) },
      list_ids: unsubscribed ? [] : listKeys.map((k) => listId(account, k)),
    });
    ccContacts.push({
      account,
      contact_id,
      email: person.email,
      first: person.first,
      last: person.last,
      re_id: person.re_id,
      unsubscribed,
    });
  };

  const mainExisting = count(DEMO_SHARES.cc_main_existing);
  const mainFromRe = Math.round(mainExisting * DEMO_SHARES.cc_main_existing_in_re);
  const sendable = (d: Draft): boolean =>
    d.type === "Individual" && d.email_valid && !d.deceased && !d.inactive && !d.address_opted_out;
  const newsletterReaders = rng.shuffle(drafts.filter((d) => sendable(d) && d.lists.includes("newsletter")));
  const mainPeople = newsletterReaders.slice(0, mainFromRe);
  const mainUnsubscribed = choose(
    mainPeople.map((_, k) => k),
    Math.round(mainPeople.length * DEMO_SHARES.cc_existing_unsubscribed),
  );
  mainPeople.forEach((d, k) => {
    // Someone typed the address with capitals when they uploaded it: identity still matches.
    const email = d.email !== null && rng.chance(0.05) ? capitalise(d.email) : (d.email ?? "");
    const lists = d.lists.filter((l) => l === "newsletter" || l === "events");
    addCc("main", { first: d.first, last: d.last, email, re_id: d.re_id }, lists, mainUnsubscribed.has(k));
  });
  const webOnly = mainExisting - mainPeople.length;
  const webOnlyUnsubscribed = choose(
    Array.from({ length: webOnly }, (_, k) => k),
    Math.round(webOnly * DEMO_SHARES.cc_existing_unsubscribed),
  );
  for (let k = 0; k < webOnly; k += 1) {
    const first = rng.pick(rng.chance(0.5) ? GIVEN_FEMALE : GIVEN_MALE);
    const last = rng.pick(FAMILY);
    const email = uniqueEmail(`${emailLocalPart(first)}.${emailLocalPart(last)}`, rng.pick(DOMAINS));
    const lists = [
      ...(rng.chance(0.75) ? ["newsletter"] : []),
      ...(rng.chance(0.35) ? ["events"] : []),
      ...(rng.chance(0.05) ? ["board"] : []),
    ];
    addCc("main", { first, last, email, re_id: null }, lists, webOnlyUnsubscribed.has(k));
  }

  const appealsExisting = count(DEMO_SHARES.cc_appeals_existing);
  const appealReaders = rng
    .shuffle(drafts.filter((d) => sendable(d) && d.lists.includes("appeals") && !d.appeals_opt_out))
    .slice(0, appealsExisting);
  const appealsUnsubscribed = choose(
    appealReaders.map((_, k) => k),
    Math.round(appealReaders.length * (DEMO_SHARES.cc_existing_unsubscribed + 0.05)),
  );
  appealReaders.forEach((d, k) => {
    const lists = ["appeals", ...(d.lists.includes("major_donors") ? ["major_gifts"] : [])];
    addCc(
      "appeals",
      { first: d.first, last: d.last, email: d.email ?? "", re_id: d.re_id },
      lists,
      appealsUnsubscribed.has(k),
    );
  });

  const people = drafts.map(
    ({
      title: _t,
      middle: _m,
      preferred: _p,
      gender: _g,
      orgName,
      secondEmail: _s,
      added: _a,
      consents: _c,
      ...person
    }) => (person.type === "Organization" ? { ...person, last: orgName ?? "" } : person),
  );

  return {
    seed,
    size,
    crm: { people: crmPeople, lists },
    platforms: {
      main: {
        lists: CC_LISTS.main.map(({ list_id, name }) => ({ id: list_id, name })),
        contacts: ccSeeds.main,
      },
      appeals: {
        lists: CC_LISTS.appeals.map(({ list_id, name }) => ({ id: list_id, name })),
        contacts: ccSeeds.appeals,
      },
    },
    people,
    ccContacts,
  };
}

function organisationName(rng: Random): string {
  switch (rng.int(0, 3)) {
    case 0:
      return `${rng.pick(PLACES)} ${rng.pick(ORG_KINDS)}`;
    case 1:
      return `${rng.pick(FAMILY)} & ${rng.pick(FAMILY)} LLP`;
    case 2:
      return `The ${rng.pick(FAMILY)} Family Trust`;
    default:
      return `St. ${rng.pick(SAINTS)}'s Parish, ${rng.pick(PLACES)}`;
  }
}

/** An address Raiser's Edge's own check lets through and a mail system would refuse. */
function breakAddress(address: string, rng: Random): string {
  const [local = "x", domain = "example.org"] = address.split("@");
  switch (rng.int(0, 2)) {
    case 0:
      return `${local}@${domain.replace(/\.(?=[^.]+$)/, "..")}`; // name@example..org
    case 1:
      return `${local.charAt(0)}..${local.slice(1)}@${domain}`; // j..ane.doe@example.org
    default:
      return `${local}.@${domain}`; // trailing dot in the local part
  }
}

function capitalise(address: string): string {
  const [local = "", domain = ""] = address.split("@");
  return `${local.charAt(0).toUpperCase()}${local.slice(1)}@${domain.charAt(0).toUpperCase()}${domain.slice(1)}`;
}
