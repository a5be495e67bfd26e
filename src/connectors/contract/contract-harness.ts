/**
 * What a connector's contract test supplies to the shared contract suite: how to start the system
 * (an emulator, or the live service when credentials are set), how to seed it and act on it, and
 * which cases it cannot run, each with a reason.
 */
import type { ConnectionSettings, ConnectorRuntime } from "../connector";
import type { ConnectorManifest } from "../manifest";

/** A record the harness put into the system, as the suite will look for it. */
export type SeededContact = { external_id: string; email: string; first_name: string; last_name: string };

export type ContractCase =
  | "check_good_credentials"
  | "check_bad_credentials"
  | "full_read"
  | "incremental_read_from_checkpoint"
  | "idempotent_reread"
  | "create_then_update"
  | "unsubscribe_and_read_back"
  | "contact_unsubscribe_observed"
  | "resubscribe_requires_contact_action"
  | "paging_at_page_size_plus_one"
  | "throttling_waits_and_succeeds"
  | "quota_exceeded_defers"
  | "revoked_credentials"
  | "partial_bulk_failure";

export type ContractTarget = {
  settings: ConnectionSettings;
  runtime: ConnectorRuntime;
  /** Settings whose credentials the system refuses. */
  bad_settings: ConnectionSettings;
  /** Puts `count` new contacts into the system, each with a unique email under `prefix`. */
  seed: (count: number, prefix: string) => Promise<SeededContact[]>;
  /** A small page size for the paging case (the suite sets it through `ConnectionSettings.page_size`). */
  page_size?: number;
  /** A list the system can add a person to (a resubscribe confirmation adds them to lists). */
  list_id?: string;
  /** Acts as the person (emulator act route): unsubscribe through the system's own footer link. */
  contact_unsubscribes?: (contact: SeededContact) => Promise<void>;
  /** Makes the next `count` API calls answer the per-second throttle. */
  inject_throttle?: (count: number) => Promise<void>;
  /** Makes the next API call answer that the daily quota is spent. */
  inject_quota_exceeded?: () => Promise<void>;
  /** Revokes every issued token. */
  revoke_credentials?: () => Promise<void>;
  /** Reads the record straight from the system (not through the connector), to check writes. */
  inspect?: (
    external_id: string,
  ) => Promise<{ opted_out: boolean; email: string; first_name?: string | null } | null>;
  teardown: () => Promise<void>;
};

export type ContractHarness = {
  /** e.g. "constant-contact (emulator)" */
  name: string;
  manifest: ConnectorManifest;
  start: () => Promise<ContractTarget>;
  /** Cases this harness cannot run, each with the reason printed in the test name. */
  skip?: Partial<Record<ContractCase, string>>;
};
