import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { configWarnings } from "./config-warnings";
import { formatConfigErrors, loadConfigFile } from "./load-config-file";

const EXAMPLE = fileURLToPath(new URL("../../examples/concord.example.yaml", import.meta.url));
const DEMO = fileURLToPath(new URL("../../examples/demo.yaml", import.meta.url));

const load = async (file: string) => {
  const r = await loadConfigFile(file);
  if (!r.ok) throw new Error(formatConfigErrors(r.errors));
  return r.config;
};

describe("configWarnings", () => {
  it("warns of plain http to another machine, and says nothing of https or of emulators on loopback", async () => {
    const example = await load(EXAMPLE);
    expect(configWarnings(example)).toEqual([]);
    expect(configWarnings(await load(DEMO))).toEqual([]); // emulators on 127.0.0.1

    const cc = example.connections[1]!;
    const cleartext = {
      ...example,
      connections: [example.connections[0]!, { ...cc, base_url: "http://api.example.net/v3" }],
      server: { ...example.server, public_url: "http://concord.example.org", trust_proxy: true },
      notifications: {
        ...example.notifications,
        webhook_urls: [{ kind: "plain" as const, value: "http://hooks.example.org/x" }],
      },
    };
    const warnings = configWarnings(cleartext);
    expect(warnings).toEqual([
      expect.stringContaining(
        "connections[1].base_url: http://api.example.net/v3 is plain http to another machine",
      ),
      expect.stringContaining("server.public_url: http://concord.example.org is plain http"),
      expect.stringContaining("server.trust_proxy: true believes any X-Forwarded-For"),
      expect.stringContaining("notifications.webhook_urls[0]: plain http"),
    ]);
  });
});
