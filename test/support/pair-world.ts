/**
 * What a seed's pair test does to an emulated world, whatever the CRM: run the pair's sync on the
 * test's clock, the first load (list rules make the lists, then their members follow), and read a
 * person's record, or a connection's lists, back through the connection's own connector.
 */
import type { ExternalList, ExternalRecord } from "../../src/connectors/connector";
import type { EmulatedWorld } from "../../src/emulated-world/emulated-world";
import { syncPair, type SyncReport } from "../../src/runs/sync-pair";
import type { Store } from "../../src/store/ports";

export function pairWorld(
  world: () => EmulatedWorld,
  store: () => Store,
  clock: { now: () => Date; advance: (ms: number) => void },
  crm: { connection: string; idOf: (name: string) => string | undefined },
) {
  const sync = async (): Promise<SyncReport> => {
    const w = world();
    const report = await syncPair(
      { store: store(), config: w.config, connections: w.connections, now: clock.now },
      w.config.pairs[0]!,
    );
    clock.advance(60_000);
    return report;
  };
  const contactOf = async (name: string): Promise<string> =>
    (await store().links.find(crm.connection, crm.idOf(name) ?? ""))?.contact_id ?? "";
  return {
    sync,
    /** The first load: the list rules make the lists, then their members follow on the next run. */
    firstLoad: async (): Promise<SyncReport> => {
      const first = await sync();
      await sync();
      return first;
    },
    contactOf,
    recordIn: async (connection: string, name: string): Promise<ExternalRecord | undefined> => {
      const link = (await store().links.forContact(await contactOf(name))).find(
        (l) => l.connection_id === connection,
      );
      if (!link) return undefined;
      const got = await world().connections.get(connection)!.session().get([link.external_id]);
      if (!got.ok) throw new Error(got.error.message);
      return got.value.records[0];
    },
    listsOf: async (connection: string): Promise<ExternalList[]> => {
      const r = await world().connections.get(connection)!.session().lists();
      if (!r.ok) throw new Error(r.error.message);
      return r.value;
    },
  };
}
