/**
 * docs/protocol.md against the contract: every frame type of schema/protocol.json has a
 * section on its side, every JSON example passes that side's parser, every error code and
 * close code is listed. A frame, code or field change that skips the doc fails here.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "../../src/core/index.js";
import { CLOSE_CODES } from "../../src/gateway/index.js";
import { parseFrame, parseServerFrame } from "../../src/protocol/index.js";

const root = new URL("../../", import.meta.url);
const doc = readFileSync(new URL("docs/protocol.md", root), "utf8");
const schema = JSON.parse(readFileSync(new URL("schema/protocol.json", root), "utf8")) as {
  $defs: Record<
    "clientFrame" | "serverFrame",
    { anyOf: { properties?: object; anyOf?: object[] }[] }
  >;
};

/** Every `type` const in a frame union (nested unions included). */
function types(def: unknown): Set<string> {
  const out = new Set<string>();
  const walk = (node: unknown) => {
    if (!node || typeof node !== "object") return;
    const n = node as { properties?: { type?: { const?: unknown } }; anyOf?: unknown[] };
    if (typeof n.properties?.type?.const === "string") out.add(n.properties.type.const);
    for (const child of n.anyOf ?? []) walk(child);
  };
  walk(def);
  return out;
}

function section(title: string): string {
  const start = doc.indexOf(`\n## ${title}\n`);
  expect(start, title).toBeGreaterThan(0);
  const end = doc.indexOf("\n## ", start + 4);
  return doc.slice(start, end < 0 ? undefined : end);
}

const sides = [
  { title: "Client → server", def: "clientFrame", parse: parseFrame },
  { title: "Server → client", def: "serverFrame", parse: parseServerFrame },
] as const;

describe("docs/protocol.md", () => {
  for (const side of sides) {
    it(`describes every ${side.def} type with an example that parses`, () => {
      const text = section(side.title);
      const expected = types(schema.$defs[side.def]);
      expect(expected.size).toBeGreaterThan(3);
      const headings = [...text.matchAll(/^### `([^`]+)`$/gm)].map((m) => m[1]!);
      expect(new Set(headings)).toEqual(expected);
      const parts = text.split(/^### /m).slice(1);
      for (const part of parts) {
        const type = /^`([^`]+)`/.exec(part)![1]!;
        const examples = [...part.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);
        expect(examples.length, `${type} has no example`).toBeGreaterThan(0);
        for (const example of examples) {
          const result = side.parse(example);
          expect(result.ok ? undefined : result.error.message, example).toBeUndefined();
          expect(result.ok && result.frame.type).toBe(type);
        }
      }
    });
  }

  it("lists every error code and close code", () => {
    const errors = section("Error codes");
    const listed = [...errors.matchAll(/^\| `([a-z_]+)` +\|/gm)].map((m) => m[1]);
    expect(listed).toEqual([...ERROR_CODES]);
    const closes = section("Close codes");
    const codes = [...closes.matchAll(/^\| (\d{4}) +\|/gm)].map((m) => Number(m[1]));
    expect(codes.sort()).toEqual(Object.values(CLOSE_CODES).sort());
  });
});
