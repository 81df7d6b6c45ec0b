import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { protocolJsonSchema } from "../../src/protocol/index.js";

describe("protocol JSON Schema", () => {
  it("schema/protocol.json is current (regenerate with `npx tsx scripts/write-schema.ts`)", () => {
    const committed = JSON.parse(
      readFileSync(new URL("../../schema/protocol.json", import.meta.url), "utf8"),
    );
    expect(committed).toEqual(JSON.parse(JSON.stringify(protocolJsonSchema())));
  });

  it("describes every client and server frame type", () => {
    const text = JSON.stringify(protocolJsonSchema());
    for (const type of [
      "send",
      "receipt",
      "presence.subscribe",
      "presence.unsubscribe",
      "typing",
      "ping",
    ]) {
      expect(text).toContain(`"const":"${type}"`);
    }
    for (const type of ["message", "presence", "error", "pong"])
      expect(text).toContain(`"const":"${type}"`);
  });
});
