/**
 * `concord sync` and `concord reconcile`: one run of each configured pair (or one), with progress on
 * a terminal, a readable summary or JSON/CSV, and exit codes: 0 all done, 1 done with something
 * left (refused records, waiting connections, differences), 2 bad config or arguments.
 */
import { SingleBar } from "cli-progress";
import { Command, Option } from "commander";
import type { EngineContext, EngineContextResult } from "../open-engine";
import { differencesCsv } from "../runs/differences-csv";
import { reconcilePair, type Difference, type ReconcileReport } from "../runs/reconcile";
import { syncPair, type SyncReport } from "../runs/sync-pair";
import { asPairRun, pairLockName, withNamedLocks } from "../store/advisory-lock";
import { erasePerson, type ErasureReport } from "../runs/erase-person";
import type { SecretKey } from "../config/secret-box";
import { recordOperatorOverride } from "../runs/operator-override";
import { contactsByEmail, linkSigner, personalLinks, revokeLinks } from "../runs/personal-links";
import { proofBundle, proofKey, publicKeyOf, signProof, verifyProof } from "../runs/proof-bundle";
import { readFile, writeFile } from "node:fs/promises";
import { normaliseEmail } from "../core/identity/normalise-email";
import { EXIT_OK, EXIT_PROBLEM, EXIT_USAGE } from "./exit-codes";
import { errorMessage } from "../core/error-code";

export type SyncCommandDeps = {
  openEngine: (configFile: string | undefined) => Promise<EngineContextResult>;
  out: (line: string) => void;
  err: (line: string) => void;
  setExitCode: (code: number) => void;
  /** Whether stderr is a terminal (progress bars only then). */
  interactive: boolean;
  /** CONCORD_SECRET_KEY, which personal links are signed with (a key derived from it). */
  secretKey?: SecretKey | string | undefined;
};

type Common = { pair?: string; config?: string; json?: boolean };

/** Opens the engine for one command and closes it after; a config that does not open is exit 2. */
async function withContext(
  deps: SyncCommandDeps,
  configFile: string | undefined,
  run: (ctx: EngineContext) => Promise<void>,
): Promise<void> {
  const opened = await deps.openEngine(configFile);
  if (!opened.ok) {
    deps.err(opened.message);
    deps.setExitCode(EXIT_USAGE);
    return;
  }
  try {
    await run(opened.context);
  } finally {
    await opened.context.close();
  }
}

async function withEngine(
  deps: SyncCommandDeps,
  options: Common,
  run: (ctx: EngineContext, pairs: NonNullable<ReturnType<EngineContext["pairs"]>>) => Promise<number>,
): Promise<void> {
  await withContext(deps, options.config, async (ctx) => {
    const pairs = ctx.pairs(options.pair);
    if (pairs === undefined || pairs.length === 0) {
      deps.err(
        options.pair === undefined
          ? "The config has no pairs: add one under pairs: (see examples/concord.example.yaml)."
          : `No pair "${options.pair}" in the config; pairs: ${ctx.config.pairs.map((p) => p.id).join(", ") || "none"}.`,
      );
      deps.setExitCode(EXIT_USAGE);
      return;
    }
    deps.setExitCode(await run(ctx, pairs));
  });
}

export function registerSyncCommands(program: Command, deps: SyncCommandDeps): void {
  registerEraseCommand(program, deps);
  registerOverrideCommand(program, deps);
  registerLinksCommand(program, deps);
  registerProofCommand(program, deps);
  program
    .command("sync")
    .description("Run one sync of each pair (pull, record consent, plan, apply consent first, link)")
    .option("--pair <id>", "only this pair")
    .option("--dry-run", "stop once the plan is stored: show counts and reasons, write nothing to any system")
    .option(
      "--full",
      "read every record instead of the changes since the last run, and plan every contact again",
    )
    .option("--config <file>", "config file (default: CONCORD_CONFIG)")
    .option("--json", "print one JSON report per pair, one per line")
    .action(async (options: Common & { dryRun?: boolean; full?: boolean }) => {
      await withEngine(deps, options, async (ctx, pairs) => {
        let code = EXIT_OK;
        for (const pair of pairs) {
          const bar = deps.interactive && options.json !== true ? progressBar() : undefined;
          let started: number | undefined;
          // After any run of the pair a worker or the server is making (PostgreSQL), never beside it.
          const report = await asPairRun(ctx.store, pair.id, () =>
            syncPair(
              {
                ...ctx.syncDeps(),
                onStage: (stage, detail) => {
                  if (options.json !== true && stage !== "done")
                    deps.err(`${pair.id}: ${stage}${detail ? ` (${detail})` : ""}…`);
                },
                onProgress: (p) => {
                  if (!bar) return;
                  started ??= Date.now();
                  const seconds = Math.max(0.001, (Date.now() - started) / 1000);
                  const payload = { connection: p.connection_id, rate: (p.done / seconds).toFixed(1) };
                  if (bar.getTotal() !== p.total) bar.start(p.total, p.done, payload);
                  else bar.update(p.done, payload);
                },
              },
              pair,
              {
                ...(options.dryRun === true ? { dry_run: true } : {}),
                ...(options.full === true ? { full: true } : {}),
              },
            ),
          );
          bar?.stop();
          if (options.json === true) deps.out(JSON.stringify(report));
          else for (const line of formatSyncReport(report)) deps.out(line);
          if (syncHasProblems(report)) code = EXIT_PROBLEM;
        }
        return code;
      });
    });

  program
    .command("reconcile")
    .description(
      "Re-read every system in full and compare their opt-out sets with the consent rules; list each difference with its cause",
    )
    .option("--pair <id>", "only this pair")
    .option("--fix", "apply the fixes the rules allow (consent operations only), then compare again")
    .option("--config <file>", "config file (default: CONCORD_CONFIG)")
    .addOption(new Option("--json", "print the report as JSON").conflicts("csv"))
    .addOption(new Option("--csv", "print the differences as CSV").conflicts("json"))
    .action(async (options: Common & { fix?: boolean; csv?: boolean }) => {
      await withEngine(deps, options, async (ctx, pairs) => {
        let code = EXIT_OK;
        const reports: ReconcileReport[] = [];
        for (const pair of pairs) {
          if (options.json !== true && options.csv !== true) deps.err(`${pair.id}: reading every record…`);
          const report = await asPairRun(ctx.store, pair.id, () =>
            reconcilePair(ctx.syncDeps(), pair, options.fix === true ? { fix: true } : {}),
          );
          reports.push(report);
          const left = report.remaining ?? report.differences;
          if (report.status === "failed" || left.length > 0) code = EXIT_PROBLEM;
        }
        if (options.json === true) deps.out(JSON.stringify(reports.length === 1 ? reports[0] : reports));
        else if (options.csv === true) deps.out(differencesCsv(reports).trimEnd());
        else for (const r of reports) for (const line of formatReconcileReport(r)) deps.out(line);
        return code;
      });
    });
}

function progressBar(): SingleBar {
  return new SingleBar({
    format:
      "  {connection} [{bar}] {value}/{total} operations · {rate}/s · {percentage}% · ETA {eta_formatted}",
    stream: process.stderr,
    hideCursor: true,
    clearOnComplete: true,
  });
}

/** `concord erase`: one person erased everywhere (or previewed), with what each system did. */
function registerEraseCommand(program: Command, deps: SyncCommandDeps): void {
  program
    .command("erase")
    .description(
      "Erase a person who asked to be forgotten: delete them in every linked system as far as it allows, erase Concord's copy and keep a keyed hash of their addresses so they are never imported again",
    )
    .argument("<email>", "the person's email address")
    .requiredOption("--by <name>", "who records the request (kept with the erasure)")
    .option("--reference <text>", "the person's request: a ticket or letter reference")
    .option("--dry-run", "show what would be deleted where, and change nothing")
    .option(
      "--all-holders",
      "erase every contact that holds the address (refused without it when there are several: preview first)",
    )
    .option("--config <file>", "config file (default: CONCORD_CONFIG)")
    .option("--json", "print the report as JSON")
    .action(
      async (
        email: string,
        options: {
          by: string;
          reference?: string;
          dryRun?: boolean;
          allHolders?: boolean;
          config?: string;
          json?: boolean;
        },
      ) => {
        await withContext(deps, options.config, async (ctx) => {
          // As every pair's only run (with workers on PostgreSQL, whichever process runs them): no
          // run in flight sends or stores the person's data after they are forgotten.
          const result = await withNamedLocks(
            ctx.store,
            ctx.config.pairs.map((p) => pairLockName(p.id)),
            () =>
              erasePerson(ctx.syncDeps(), {
                email,
                requested_by: options.by,
                ...(options.reference !== undefined ? { reference: options.reference } : {}),
                ...(options.dryRun === true ? { dry_run: true } : {}),
                ...(options.allHolders === true ? { all_holders: true } : {}),
              }),
          );
          if (!result.ok) {
            deps.err(result.message);
            deps.setExitCode(EXIT_USAGE);
            return;
          }
          if (options.json === true) deps.out(JSON.stringify(result.report));
          else for (const line of formatErasureReport(result.report)) deps.out(line);
          deps.setExitCode(result.report.status === "incomplete" ? EXIT_PROBLEM : EXIT_OK);
        });
      },
    );
}

/** `concord override`: the person's written request to receive email again, recorded with its evidence. */
function registerOverrideCommand(program: Command, deps: SyncCommandDeps): void {
  program
    .command("override")
    .description(
      "Record that a person asked in writing to receive email again: an operator override with the request as evidence, lifting the opt-outs made before it (refused without --reference)",
    )
    .argument("<email>", "the person's email address")
    .requiredOption("--by <name>", "who records the request")
    .requiredOption("--reference <text>", "where the written request is: a ticket, a letter, an email's id")
    .option("--topic <key>", "only this topic (default: all email)")
    .option("--text <words>", "the request's words, or a summary")
    .requiredOption(
      "--asked-at <date-time>",
      "when the person asked, an ISO-8601 date-time with its offset (2026-12-01T09:30:00Z): only opt-outs made before it are lifted",
    )
    .option("--contact <id>", "the contact, when several hold the address")
    .option(
      "--no-carry",
      "record it only, and leave it to the next sync (by default it is carried to every system now)",
    )
    .option("--config <file>", "config file (default: CONCORD_CONFIG)")
    .option("--json", "print the result as JSON")
    .action(
      async (
        email: string,
        options: {
          by: string;
          reference: string;
          topic?: string;
          text?: string;
          askedAt: string;
          contact?: string;
          carry?: boolean;
          config?: string;
          json?: boolean;
        },
      ) => {
        const address = normaliseEmail(email);
        if (!address.ok) {
          deps.err(`"${email.slice(0, 100)}" is not an email address (${address.reason}).`);
          deps.setExitCode(EXIT_USAGE);
          return;
        }
        await withContext(deps, options.config, async (ctx) => {
          const holders = (await ctx.store.contacts.findByMatchKey(address.match_key)).map((c) => c.id);
          const contactId = options.contact ?? (holders.length === 1 ? holders[0] : undefined);
          if (contactId === undefined || !holders.includes(contactId)) {
            deps.err(
              holders.length === 0
                ? `No contact has the address ${email}.`
                : `${holders.length} contacts hold ${email}: choose one with --contact (${holders.join(", ")}).`,
            );
            deps.setExitCode(EXIT_PROBLEM);
            return;
          }
          const result = await recordOperatorOverride(ctx.syncDeps(), {
            contact_id: contactId,
            scope: options.topic === undefined ? { kind: "global" } : { kind: "topic", topic: options.topic },
            request_reference: options.reference,
            ...(options.text !== undefined ? { request_text: options.text } : {}),
            requested_at: options.askedAt,
            recorded_by: options.by,
          });
          if (!result.ok) {
            deps.err(`${result.code}: ${result.message}`);
            deps.setExitCode(EXIT_USAGE);
            return;
          }
          // Carried to every system now, as the API and the UI do, not at the next poll: a sync of
          // this person in each pair, after any run of the pair another process is making.
          const carried =
            result.recorded === "appended" && options.carry !== false
              ? await carryToEverySystem(ctx, contactId)
              : [];
          const stopped = carried.filter((c) => c.problem !== undefined);
          if (options.json === true)
            deps.out(
              JSON.stringify({
                ...result,
                carried: carried.map((c) => ({
                  pair_id: c.pair_id,
                  status: c.problem === undefined ? "done" : "left_for_next_sync",
                  ...(c.problem !== undefined ? { problem: c.problem } : {}),
                  ...(c.run_id !== undefined ? { run_id: c.run_id } : {}),
                })),
              }),
            );
          else {
            const done = carried.length - stopped.length;
            const next =
              carried.length === 0
                ? "The next sync carries it to each system by its lawful path."
                : `Carried now to ${plural(done, "pair")} by each system's lawful path${stopped.length > 0 ? `; left for the next sync in ${stopped.map((c) => `${c.pair_id} (${c.problem ?? ""})`).join(", ")}` : ""}.`;
            deps.out(
              `Override ${result.recorded === "duplicate" ? "already recorded" : "recorded"} (${result.event_id}): ${plural(result.lifted.length, "opt-out")} lifted; ${options.topic ?? "all email"} is ${result.now.sendable ? "sendable" : "not sendable"} now (rule ${result.now.rule}). ${next}`,
            );
          }
          // Recorded either way; 1 says a system has not got it yet (the next sync tries again).
          deps.setExitCode(stopped.length > 0 ? EXIT_PROBLEM : EXIT_OK);
        });
      },
    );
}

/**
 * One person's consent carried to every pair's systems now: a sync of that contact alone, without
 * reading the systems first (what it lifts is in the ledger already). A pair that could not take it
 * says why; the record stands, and the pair's next sync carries it.
 */
async function carryToEverySystem(
  ctx: EngineContext,
  contactId: string,
): Promise<{ pair_id: string; run_id?: string; problem?: string }[]> {
  const out: { pair_id: string; run_id?: string; problem?: string }[] = [];
  // Only the pairs holding a record of theirs: the others have nothing to carry it to.
  const linkedOn = new Set((await ctx.store.links.forContact(contactId)).map((l) => l.connection_id));
  const pairs = (ctx.pairs(undefined) ?? []).filter((p) =>
    [p.crm, ...p.platforms.map((x) => x.connection)].some((c) => linkedOn.has(c)),
  );
  for (const pair of pairs) {
    try {
      const report = await asPairRun(ctx.store, pair.id, () =>
        syncPair(ctx.syncDeps(), pair, { pull: false, contact_ids: [contactId] }),
      );
      const waiting = report.execution?.waiting ?? [];
      const refused = report.execution?.rejections ?? [];
      const problem =
        report.error !== undefined
          ? `${report.error.code}: ${report.error.message}`
          : waiting.length > 0
            ? waiting.map((w) => `${w.connection_id} waits: ${w.code}`).join("; ")
            : refused.length > 0
              ? refused.map((r) => `${r.connection_id} refused: ${r.code}`).join("; ")
              : undefined;
      out.push({ pair_id: pair.id, run_id: report.run_id, ...(problem !== undefined ? { problem } : {}) });
    } catch (error) {
      out.push({ pair_id: pair.id, problem: errorMessage(error) });
    }
  }
  return out;
}

/** `concord links`: a person's one-click URL and the headers for an email to them; `--revoke` ends the old ones. */
function registerLinksCommand(program: Command, deps: SyncCommandDeps): void {
  program
    .command("links")
    .description(
      "A person's signed one-click unsubscribe URL and the List-Unsubscribe / List-Unsubscribe-Post headers for an email to them",
    )
    .argument("<email>", "the person's email address")
    .option("--revoke", "revoke every link issued to them so far, then print new ones")
    .option("--config <file>", "config file (default: CONCORD_CONFIG)")
    .option("--json", "print the links as JSON")
    .action(async (email: string, options: { revoke?: boolean; config?: string; json?: boolean }) => {
      await withContext(deps, options.config, async (ctx) => {
        const signer = linkSigner(deps.secretKey, ctx.config);
        if (!signer.ok) {
          deps.err(`Personal links are off: ${signer.error}.`);
          deps.setExitCode(EXIT_USAGE);
          return;
        }
        const holders = await contactsByEmail(ctx.store, email);
        if (holders === undefined) {
          deps.err(`"${email.slice(0, 100)}" is not an email address.`);
          deps.setExitCode(EXIT_USAGE);
          return;
        }
        if (holders.length === 0) {
          deps.err(`No contact has the address ${email}.`);
          deps.setExitCode(EXIT_PROBLEM);
          return;
        }
        const all = [];
        for (const id of holders) {
          if (options.revoke === true) await revokeLinks(ctx.store, id, ctx.now());
          const links = await personalLinks(ctx.store, signer.value, id, ctx.now());
          if (links) all.push(links);
        }
        if (options.json === true) deps.out(JSON.stringify(all.length === 1 ? all[0] : all));
        else
          for (const l of all) {
            deps.out(
              `${l.contact_id} (valid until ${l.expires_at})${options.revoke === true ? ", older links revoked" : ""}`,
            );
            deps.out(`  one-click URL:          ${l.one_click_url}`);
            deps.out(`  preference centre:      ${l.preferences_url}`);
            deps.out(`  List-Unsubscribe:       ${l.list_unsubscribe}`);
            deps.out(`  List-Unsubscribe-Post:  ${l.list_unsubscribe_post}`);
          }
        deps.setExitCode(EXIT_OK);
      });
    });
}

/** `concord proof`: one person's signed proof bundle, or `--verify` a bundle someone was given. */
function registerProofCommand(program: Command, deps: SyncCommandDeps): void {
  program
    .command("proof")
    .description(
      "Proof for an auditor: a person's every consent event with its evidence and chain hash, signed (Ed25519); --verify checks a bundle without the store",
    )
    .argument("[email]", "the person's email address")
    .option("--output <file>", "write the bundle there instead of standard output")
    .option("--verify <file>", "check a bundle: its signature and every event's chain hash")
    .option(
      "--public-key <base64>",
      "with --verify: the key the organisation published, which the bundle must be signed with",
    )
    .option("--config <file>", "config file (default: CONCORD_CONFIG)")
    .action(
      async (
        email: string | undefined,
        options: { output?: string; verify?: string; publicKey?: string; config?: string },
      ) => {
        // Each mode takes its own options: one given to the other is a mistake, not ignored.
        const mixed =
          options.verify !== undefined
            ? [email !== undefined ? "an email address" : "", options.output !== undefined ? "--output" : ""]
            : [options.publicKey !== undefined ? "--public-key" : ""];
        if (mixed.some((m) => m !== "")) {
          deps.err(
            options.verify !== undefined
              ? `--verify checks a bundle already made: it takes no ${mixed.filter((m) => m !== "").join(" or ")}. Make a bundle (concord proof EMAIL --output FILE), then check it (concord proof --verify FILE).`
              : "--public-key is the key to check a bundle against: use it with --verify FILE.",
          );
          deps.setExitCode(EXIT_USAGE);
          return;
        }
        if (options.verify !== undefined) {
          let doc: unknown;
          try {
            doc = JSON.parse(await readFile(options.verify, "utf8"));
          } catch (error) {
            deps.err(`${options.verify}: not a readable JSON file (${errorMessage(error)}).`);
            deps.setExitCode(EXIT_USAGE);
            return;
          }
          // Whose key: the one the organisation published, else this installation's own. A bundle
          // checked only against the key it names itself proves nothing of who signed it.
          const own = options.publicKey === undefined ? proofKey(deps.secretKey) : undefined;
          const expected = options.publicKey ?? (own?.ok === true ? publicKeyOf(own.value) : undefined);
          const problems = verifyProof(doc, expected);
          if (expected === undefined)
            problems.push(
              "no key to check the signer against: the signature holds only for the key the bundle names itself, which anyone can make; pass --public-key with the key the organisation published (or run where CONCORD_SECRET_KEY is this installation's)",
            );
          if (problems.length === 0)
            deps.out(
              `${options.verify}: the signature (${options.publicKey !== undefined ? "the key given" : "this installation's key"}) and every event's chain hash hold.`,
            );
          else for (const p of problems) deps.out(`${options.verify}: ${p}`);
          deps.setExitCode(problems.length === 0 ? EXIT_OK : EXIT_PROBLEM);
          return;
        }
        if (email === undefined) {
          deps.err("Name the person's email address, or --verify FILE.");
          deps.setExitCode(EXIT_USAGE);
          return;
        }
        const key = proofKey(deps.secretKey);
        if (!key.ok) {
          deps.err(`Proof bundles cannot be signed: ${key.error}.`);
          deps.setExitCode(EXIT_USAGE);
          return;
        }
        await withContext(deps, options.config, async (ctx) => {
          const holders = await contactsByEmail(ctx.store, email);
          if (holders === undefined || holders.length !== 1) {
            deps.err(
              holders === undefined
                ? `"${email.slice(0, 100)}" is not an email address.`
                : holders.length === 0
                  ? `No contact has the address ${email}.`
                  : `${holders.length} contacts hold ${email} (${holders.join(", ")}): use GET /api/people/{id}/proof for one.`,
            );
            deps.setExitCode(holders === undefined ? EXIT_USAGE : EXIT_PROBLEM);
            return;
          }
          const bundle = await proofBundle(ctx.store, ctx.config, holders[0] ?? "", ctx.now());
          if (!bundle) {
            deps.err(`No contact has the address ${email}.`);
            deps.setExitCode(EXIT_PROBLEM);
            return;
          }
          const text = JSON.stringify(signProof(bundle, key.value), null, 2);
          if (options.output !== undefined) {
            const written = await writeFile(options.output, `${text}\n`).then(
              () => undefined,
              (error: unknown) => errorMessage(error),
            );
            if (written !== undefined) {
              deps.err(
                `Cannot write the proof to ${options.output}: ${written}. Nothing was written; name a file in a folder that exists and that you may write to.`,
              );
              deps.setExitCode(EXIT_USAGE);
              return;
            }
            deps.out(
              `Wrote ${options.output}: ${bundle.events.length} consent events, signed with the public key ${publicKeyOf(key.value)}.`,
            );
          } else deps.out(text);
          deps.setExitCode(EXIT_OK);
        });
      },
    );
}

export function formatErasureReport(r: ErasureReport): string[] {
  const lines: string[] = [];
  lines.push(
    r.dry_run
      ? `Erasure preview: ${plural(r.contact_ids.length, "contact")} in Concord, ${plural(r.systems.length, "record")} in linked systems; nothing was changed.`
      : `Erasure ${r.erasure_id ?? ""}: ${r.status}. ${plural(r.addresses_suppressed, "address")} kept only as a keyed hash: never imported again.`,
  );
  if (r.contact_ids.length === 0)
    lines.push(
      "  Concord holds no contact with this address; the suppression still stops it from being imported.",
    );
  for (const s of r.systems)
    lines.push(`  ${s.connection_id} (${s.system}) record ${s.external_id}: ${s.status} — ${s.message}`);
  const c = r.erased_in_concord;
  if (c)
    lines.push(
      `  Concord: ${plural(c.contacts, "contact")} erased, ${plural(c.evidence_blanked, "consent event")} with evidence blanked (the ledger still verifies), ${plural(c.snapshots, "record snapshot")} deleted, ${plural(c.operations_scrubbed, "operation")} scrubbed.`,
    );
  else if (r.status === "incomplete")
    lines.push("  Concord keeps its copy until every system is done: run the same command again to retry.");
  return lines;
}

export function syncHasProblems(r: SyncReport): boolean {
  return (
    r.status === "failed" ||
    r.pulls.some((p) => p.error !== null) ||
    (r.execution !== undefined && (r.execution.rejections.length > 0 || r.execution.waiting.length > 0))
  );
}

const plural = (n: number, word: string): string =>
  `${n} ${word}${n === 1 ? "" : word.endsWith("s") ? "es" : "s"}`;

export function formatSyncReport(r: SyncReport): string[] {
  const lines: string[] = [];
  lines.push(`Pair ${r.pair_id}: ${r.dry_run ? "dry run" : "sync"} ${r.status} (run ${r.run_id})`);
  if (r.error) lines.push(`  error: ${r.error.code}: ${r.error.message}`);
  for (const p of r.pulls) {
    const error = p.error ? ` — stopped: ${p.error.code}: ${p.error.message}` : "";
    lines.push(
      `  read ${p.connection_id}: ${plural(p.records_seen, "record")} (${p.records_changed} changed), ${plural(p.consent_events_appended, "consent event")} recorded${error}`,
    );
    if (p.records_refused_erased > 0)
      lines.push(
        `    skipped for ${p.connection_id}: erased ${p.records_refused_erased} (records at erased addresses, never imported again)`,
      );
    if (p.records_stale > 0)
      lines.push(
        `    skipped for ${p.connection_id}: stale ${p.records_stale} (read before a newer read of the same record was stored)`,
      );
  }
  const plan = r.plan;
  if (plan) {
    lines.push(`  plan ${r.plan_id ?? ""}: ${plural(plan.operations.length, "operation")}`);
    for (const [connection, kinds] of Object.entries(plan.counts.operations))
      for (const [kind, c] of Object.entries(kinds))
        lines.push(
          `    ${connection} ${kind}: ${plural(c.operations, "operation")}, ${plural(c.contacts, "contact")}`,
        );
    for (const [connection, gain] of Object.entries(plan.gains))
      if (gain > 0) lines.push(`    ${connection} gains ${plural(gain, "contact")}`);
    for (const [connection, reasons] of Object.entries(plan.counts.skipped)) {
      const parts = Object.entries(reasons).map(([code, n]) => `${code} ${n}`);
      if (parts.length > 0) lines.push(`    skipped for ${connection}: ${parts.join(", ")}`);
    }
    if (plan.lapses.length > 0)
      lines.push(
        `    implied consent lapsed by rule: ${plural(plan.lapses.length, "opt-out")} ${r.dry_run ? "would be recorded" : "recorded"} (${[...new Set(plan.lapses.map((e) => e.source.connection.replace(/^compliance:/, "")))].join(", ")})`,
      );
    if (r.lapses_deferred)
      lines.push(
        `    implied consent of ${plural(r.lapses_deferred.contacts, "contact")} found lapsed but not acted on: ${r.lapses_deferred.reason}`,
      );
    if (plan.waiting.length > 0)
      lines.push(`    waiting for the person's own confirmation: ${plural(plan.waiting.length, "contact")}`);
    for (const l of r.lists_left ?? [])
      lines.push(`    list rule left the CRM list “${l.crm_list}” for ${l.platform}: ${l.reason}`);
    for (const u of plan.unlinked_opt_outs)
      lines.push(
        `    opt-out from a record uploaded straight into ${u.connection_id} (matched by address): ${u.applied ? "applied to the CRM" : "reported only (policy)"} — contact ${u.contact_id}`,
      );
  }
  const x = r.execution;
  if (x) {
    lines.push(
      `  applied: ${x.operations.succeeded} succeeded, ${x.operations.failed} refused, ${x.operations.deferred} waiting, ${x.operations.skipped} skipped`,
    );
    for (const w of x.waiting)
      lines.push(
        `    ${w.connection_id} waits (${w.code}): ${w.message}${w.retry_at ? ` Resumes at ${w.retry_at}.` : ""} ${plural(w.operations, "operation")} queued.`,
      );
    for (const rej of x.rejections.slice(0, 10))
      lines.push(
        `    refused by ${rej.connection_id} (${rej.code}): ${rej.message}${rej.contact_id ? ` — contact ${rej.contact_id}` : ""}`,
      );
    if (x.rejections.length > 10) lines.push(`    … and ${x.rejections.length - 10} more refusals`);
  }
  return lines;
}

export function formatReconcileReport(r: ReconcileReport): string[] {
  const lines: string[] = [];
  lines.push(
    `Pair ${r.pair_id}: reconciliation ${r.status} (run ${r.run_id}), ${plural(r.contacts_compared, "contact")} compared`,
  );
  if (r.error) lines.push(`  error: ${r.error.code}: ${r.error.message}`);
  const counts = Object.entries(r.opt_outs_by_connection).map(([c, n]) => `${c} ${n}`);
  if (counts.length > 0) lines.push(`  opted out as each system shows it: ${counts.join(", ")}`);
  const show = (label: string, list: readonly Difference[]): void => {
    lines.push(`  ${label}: ${list.length}`);
    for (const d of list)
      lines.push(
        `    ${d.email ?? d.contact_id} in ${d.connection_id} (${d.scope.kind === "global" ? "all email" : d.scope.topic}): ${d.kind}${d.fixable ? " [fixable]" : ""} — shows ${d.system_shows}; rules: ${d.rules_say}. ${d.cause}`,
      );
  };
  show("differences", r.differences);
  if (r.fixed)
    lines.push(
      `  fixed: ${r.fixed.operations.succeeded} succeeded, ${r.fixed.operations.failed} refused, ${r.fixed.operations.deferred} waiting`,
    );
  if (r.remaining) show("remaining after the fix", r.remaining);
  return lines;
}
