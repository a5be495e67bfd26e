/**
 * The demo's worlds: which systems run, from which example config, and what part each connection
 * plays in the generated world — the CRM, the main platform account (global opt-outs, the
 * newsletter and event lists) or the appeals account (one topic). A role may be played by several
 * connections (fan-out): each holds the same generated contacts, and the simulator acts in each.
 */
export type DemoRole = "crm" | "main" | "appeals";

export type DemoWorldSpec = {
  name: string;
  /** The example config, relative to the package root. */
  config: string;
  /** What it shows, for `--help`, the start banner and docs/demo.md. */
  summary: string;
  /** The connections the demo emulates, by id, and the part each plays. */
  roles: Readonly<Record<string, DemoRole>>;
};

export const DEMO_WORLDS: readonly DemoWorldSpec[] = [
  {
    name: "renxt-cc",
    config: "examples/demo.yaml",
    summary: "Raiser's Edge NXT and two Constant Contact accounts (one global, one for appeals)",
    roles: { "re-nxt": "crm", "cc-main": "main", "cc-appeals": "appeals" },
  },
  {
    name: "renxt-mailchimp",
    config: "examples/demo-renxt-mailchimp.yaml",
    summary: "Raiser's Edge NXT and a Mailchimp audience (its Appeals group stands for the appeals topic)",
    roles: { "re-nxt": "crm", "mc-main": "main" },
  },
  {
    name: "renxt-cc-mailchimp",
    config: "examples/demo-renxt-cc-mailchimp.yaml",
    summary:
      "fan-out: Raiser's Edge NXT with two Constant Contact accounts and a Mailchimp audience in one pair",
    roles: { "re-nxt": "crm", "cc-main": "main", "cc-appeals": "appeals", "mc-main": "main" },
  },
  {
    name: "kindful-cc",
    config: "examples/demo-kindful-cc.yaml",
    summary:
      "Kindful and two Constant Contact accounts (seed 002): chosen groups as lists, a topic in a custom field",
    roles: { kindful: "crm", "cc-main": "main", "cc-appeals": "appeals" },
  },
  {
    name: "growthzone-cc",
    config: "examples/demo-growthzone-cc.yaml",
    summary:
      "GrowthZone and two Constant Contact accounts (seed 004): lists set to synchronise, Do Not Contact, Transactional Only",
    roles: { growthzone: "crm", "cc-main": "main", "cc-appeals": "appeals" },
  },
  {
    name: "growthzone-mailchimp",
    config: "examples/demo-growthzone-mailchimp.yaml",
    summary: "GrowthZone and a Mailchimp audience (seed 004): synchronised lists as tags, Do Not Contact",
    roles: { growthzone: "crm", "mc-main": "main" },
  },
];

export const DEFAULT_WORLD = "renxt-cc";

export function demoWorld(name: string): DemoWorldSpec | undefined {
  return DEMO_WORLDS.find((w) => w.name === name);
}

/** The connections that play a role, in config order. */
export const connectionsFor = (world: DemoWorldSpec, role: DemoRole): string[] =>
  Object.entries(world.roles)
    .filter(([, r]) => r === role)
    .map(([id]) => id);
