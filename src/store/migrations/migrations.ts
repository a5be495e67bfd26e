/** The ordered list of schema migrations, kept in code so one build carries its own schema to SQLite or PostgreSQL. */
import type { Kysely } from "kysely";
import { Migrator, type Migration, type MigrationResult } from "kysely/migration";
import { migration0001Initial } from "./0001-initial";
import { migration0002LinkOrigin } from "./0002-link-origin";
import { migration0003WebhookInbox } from "./0003-webhook-inbox";
import { migration0004TypedConsentSnapshots } from "./0004-typed-consent-snapshots";
import { migration0005ApiBudgets } from "./0005-api-budgets";
import { migration0006Alerts } from "./0006-alerts";
import { migration0007PlatformRejections } from "./0007-platform-rejections";
import { migration0008Erasures } from "./0008-erasures";
import { migration0009LinkRevocations } from "./0009-link-revocations";
import { migration0010Signups } from "./0010-signups";
import { migration0011InboxRetries } from "./0011-inbox-retries";
import { migration0012LedgerSeals } from "./0012-ledger-seals";
import { migration0013StoreProbe } from "./0013-store-probe";
import { migration0014SharedState } from "./0014-shared-state";
import { migration0015OperationsByContact } from "./0015-operations-by-contact";
import { migration0016PlanMarks } from "./0016-plan-marks";
import { migration0017PlanRevisions } from "./0017-plan-revisions";
import { migration0018SignInFailures } from "./0018-sign-in-failures";
import { migration0019ContactChangeOrder } from "./0019-contact-change-order";
import { migration0020LinksByConnectionAndContact } from "./0020-links-by-connection-and-contact";
import { migration0021SharedCallRate } from "./0021-shared-call-rate";
import { migration0022SignupClientGroup } from "./0022-signup-client-group";
import { migration0023ImportClaims } from "./0023-import-claims";

/** Names sort in apply order; never rename or edit a shipped migration, add a new one. */
export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  "0001_initial": migration0001Initial,
  "0002_link_origin": migration0002LinkOrigin,
  "0003_webhook_inbox": migration0003WebhookInbox,
  "0004_typed_consent_snapshots": migration0004TypedConsentSnapshots,
  "0005_api_budgets": migration0005ApiBudgets,
  "0006_alerts": migration0006Alerts,
  "0007_platform_rejections": migration0007PlatformRejections,
  "0008_erasures": migration0008Erasures,
  "0009_link_revocations": migration0009LinkRevocations,
  "0010_signups": migration0010Signups,
  "0011_inbox_retries": migration0011InboxRetries,
  "0012_ledger_seals": migration0012LedgerSeals,
  "0013_store_probe": migration0013StoreProbe,
  "0014_shared_state": migration0014SharedState,
  "0015_operations_by_contact": migration0015OperationsByContact,
  "0016_plan_marks": migration0016PlanMarks,
  "0017_plan_revisions": migration0017PlanRevisions,
  "0018_sign_in_failures": migration0018SignInFailures,
  "0019_contact_change_order": migration0019ContactChangeOrder,
  "0020_links_by_connection_and_contact": migration0020LinksByConnectionAndContact,
  "0021_shared_call_rate": migration0021SharedCallRate,
  "0022_signup_client_group": migration0022SignupClientGroup,
  "0023_import_claims": migration0023ImportClaims,
};

/** Applies every pending migration; a failure is an environment problem or a bug, so it throws. */
export async function migrateToLatest<DB>(
  db: Kysely<DB>,
  /** The PostgreSQL schema the store lives in: its migration tables are there, whatever other schemas hold. */
  schema?: string,
): Promise<readonly MigrationResult[]> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: () => Promise.resolve(MIGRATIONS) },
    ...(schema === undefined ? {} : { migrationTableSchema: schema }),
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName ?? "unknown";
    throw new Error(
      `store migration ${failed} failed: ${error instanceof Error ? error.message : JSON.stringify(error)}`,
      {
        cause: error,
      },
    );
  }
  return results ?? [];
}
