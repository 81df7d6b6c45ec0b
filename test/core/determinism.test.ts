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

/** Comments, and the Clock's own method declarations (`setTimeout(fn: ...)`), are not calls. */
function isCommentOrDeclaration(line: string): boolean {
  const t = line.trim();
  return t.startsWith("*") || t.startsWith("//") || /^(setTimeout|setInterval)\(fn: /.test(t);
}

describe("determinism", () => {
  it("only src/core/system.ts touches real time and randomness", () => {
    const banned =
      /Date\.now\(|Math\.random\(|(?<![.\w])setTimeout\(|(?<![.\w])setInterval\(|performance\.now\(|new Date\(\)/;
    const offenders = files(root)
      .filter((f) => !f.endsWith(join("core", "system.ts")))
      .flatMap((f) =>
        readFileSync(f, "utf8")
          .split("\n")
          .map((line, i) => ({ line, where: `${relative(root, f)}:${i + 1}` }))
          .filter(({ line }) => banned.test(line) && !isCommentOrDeclaration(line)),
      )
      .map(({ where, line }) => `${where}: ${line.trim()}`);
    expect(offenders).toEqual([]);
  });

  it("the core never imports a socket or a database", () => {
    const offenders = files(root)
      .filter((f) => !relative(root, f).startsWith("adapters"))
      .filter((f) => /from "(ws|ioredis)"/.test(readFileSync(f, "utf8")))
      .map((f) => relative(root, f));
    expect(offenders).toEqual([]);
  });
});
