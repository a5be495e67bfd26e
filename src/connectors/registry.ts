/** Which connector serves each system Concord can connect to. */
import type { ConnectorDefinition, SystemId } from "./connector";
import { blackbaudRenxtConnector } from "./blackbaud-renxt/connector";
import { constantContactConnector } from "./constant-contact/connector";

export const CONNECTORS: Readonly<Record<SystemId, ConnectorDefinition>> = {
  "constant-contact": constantContactConnector,
  "blackbaud-renxt": blackbaudRenxtConnector,
};

export function connectorFor(system: string): ConnectorDefinition | undefined {
  return Object.hasOwn(CONNECTORS, system) ? CONNECTORS[system as SystemId] : undefined;
}
