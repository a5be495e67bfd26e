/** Builds a `StoreSession` over a kysely handle: every repository bound to the same connection or transaction. */
import type { Kysely } from "kysely";
import type { LedgerSealer, StoreDialect, StoreSession } from "../ports";
import type { Database } from "../schema";
import { contactRepository } from "./contact-repository";
import { consentEventRepository } from "./consent-event-repository";
import {
  alertRepository,
  budgetRepository,
  credentialRepository,
  healthRepository,
  platformRejectionRepository,
  sessionRepository,
  signInFailureRepository,
  connectFlowRepository,
} from "./connection-repositories";
import { inboxRepository } from "./inbox-repository";
import { linkRepository } from "./link-repository";
import { reviewRepository } from "./review-repository";
import { operationRepository, outcomeRepository, planRepository, runRepository } from "./run-repositories";
import { suppressionRepository } from "./suppression-repository";
import { baselineRepository, checkpointRepository, snapshotRepository } from "./sync-state-repositories";

export function sqlStoreSession(
  db: Kysely<Database>,
  dialect: StoreDialect,
  clock: () => Date,
  sealer?: LedgerSealer,
): StoreSession {
  const ctx = { db, clock };
  const session: StoreSession = {
    dialect,
    db,
    inTransaction: db.isTransaction,
    clock,
    sealer,
    contacts: contactRepository(ctx),
    links: linkRepository(ctx),
    snapshots: snapshotRepository(ctx),
    baselines: baselineRepository(ctx),
    checkpoints: checkpointRepository(ctx),
    consentEvents: consentEventRepository(ctx),
    suppressions: suppressionRepository(ctx),
    runs: runRepository(ctx),
    plans: planRepository(ctx),
    operations: operationRepository(ctx),
    outcomes: outcomeRepository(ctx),
    reviewItems: reviewRepository(ctx),
    health: healthRepository(ctx, dialect),
    credentials: credentialRepository(ctx),
    inbox: inboxRepository(ctx, dialect),
    budgets: budgetRepository(ctx, dialect),
    sessions: sessionRepository(ctx),
    signInFailures: signInFailureRepository(ctx),
    connectFlows: connectFlowRepository(ctx),
    alerts: alertRepository(ctx),
    rejections: platformRejectionRepository(ctx),
    transaction<T>(fn: (tx: StoreSession) => Promise<T>): Promise<T> {
      // Joining rather than nesting: SQLite has one connection, so a second BEGIN from inside would deadlock.
      if (db.isTransaction) return fn(session);
      return db.transaction().execute((trx) => fn(sqlStoreSession(trx, dialect, clock, sealer)));
    },
  };
  return session;
}
