// Regenerates schema/protocol.json from the zod schemas: `npx tsx scripts/write-schema.ts`.
import { writeFileSync } from "node:fs";
import { protocolJsonSchema } from "../src/protocol/index.js";

writeFileSync(
  new URL("../schema/protocol.json", import.meta.url),
  `${JSON.stringify(protocolJsonSchema(), null, 2)}\n`,
);
