/**
 * A CRM record's ending (marked deceased or inactive, deleted): an opt-out by the organisation about
 * the person, never a preference. The record stage names the opt-out it records for one after the
 * record and the ending; the planner reads that name back to push it to every platform, whatever
 * the pair says of the CRM's other opt-outs.
 */
export type RecordEnding = "deceased" | "inactive" | "deleted";

/** The record id (`evidence.source_record_id`) of the opt-out a record's ending is. */
export const endingEventId = (external_id: string, ending: RecordEnding): string =>
  `${external_id}:${ending}`;

/** Whether `source_record_id` names a record's ending (`endingEventId`). */
export const isEndingEventId = (source_record_id: string | undefined): boolean =>
  source_record_id !== undefined && /:(?:deceased|inactive|deleted)$/.test(source_record_id);

/** The record id of the resubscribe request a record's ending cleared (made active again, say) is. */
export const endingClearedEventId = (external_id: string, ending: RecordEnding): string =>
  `${endingEventId(external_id, ending)}:cleared`;

/** Whether `source_record_id` names an ending cleared (`endingClearedEventId`). */
export const isEndingClearedEventId = (source_record_id: string | undefined): boolean =>
  source_record_id !== undefined && /:(?:deceased|inactive|deleted):cleared$/.test(source_record_id);
