import { z } from "zod";
import { schemas } from "./schemas.js";

/**
 * The protocol as JSON Schema (draft 2020-12), for clients in other languages:
 * `clientFrame` is what a client may send, `serverFrame` what it may receive.
 * `schema/protocol.json` holds a copy; a test keeps it current.
 */
export function protocolJsonSchema(): Record<string, unknown> {
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "relaykit protocol",
    $defs: {
      clientFrame: z.toJSONSchema(schemas.clientFrame, { target: "draft-2020-12", io: "input" }),
      serverFrame: z.toJSONSchema(schemas.serverFrame, { target: "draft-2020-12", io: "output" }),
    },
  };
}
