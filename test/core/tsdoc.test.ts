import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const root = new URL("../../src/", import.meta.url).pathname;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

describe("public API documentation", () => {
  it("every exported declaration has a TSDoc comment (re-exports excepted)", () => {
    const declaration =
      /^export (async )?(function|class|interface|type|const|let|enum|abstract class) /;
    const undocumented: string[] = [];
    for (const file of files(root)) {
      const lines = readFileSync(file, "utf8").split("\n");
      lines.forEach((line, i) => {
        if (!declaration.test(line) || /^export type \{/.test(line)) return;
        if (!lines[i - 1]?.trim().endsWith("*/"))
          undocumented.push(`${relative(root, file)}:${i + 1}`);
      });
    }
    expect(undocumented).toEqual([]);
  });
});
