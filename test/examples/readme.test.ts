/**
 * Every ```ts block in README.md runs here as its own program, with `relaykit` imports
 * pointed at the source. A block passes when it exits 0 within the time limit; blocks use
 * node:assert for what they promise, so a wrong claim in the README fails this test.
 * Every block also type-checks as written, under the project's strict compiler options
 * with `relaykit*` mapped to the source, so a sample a user copies compiles.
 */
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const root = fileURLToPath(new URL("../../", import.meta.url));
const readme = readFileSync(join(root, "README.md"), "utf8");
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
const dir = join(root, ".bench-tmp", "readme");
const entries: Record<string, string> = {
  "relaykit/ws": "src/adapters/ws/index.ts",
  "relaykit/http": "src/adapters/http/index.ts",
  "relaykit/redis": "src/adapters/redis/index.ts",
  "relaykit/testing": "src/testing/index.ts",
  "relaykit/client": "src/client/index.ts",
  "relaykit/auth": "src/auth/index.ts",
  "relaykit/metrics": "src/metrics/index.ts",
  relaykit: "src/index.ts",
};

function rewrite(code: string): string {
  return code.replace(/from "(relaykit(?:\/[a-z]+)?)"/g, (_, name: string) => {
    const target = entries[name];
    if (!target) throw new Error(`unknown entry ${name}`);
    return `from ${JSON.stringify(join(root, target))}`;
  });
}

function heading(index: number): string {
  const at = readme.indexOf(blocks[index]!);
  const before = readme.slice(0, at).match(/^#+ .*$/gm);
  return before?.at(-1)?.replace(/^#+ /, "") ?? `block ${index + 1}`;
}

describe("README code blocks", () => {
  mkdirSync(dir, { recursive: true });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("has code blocks to run", () => {
    expect(blocks.length).toBeGreaterThan(5);
  });

  // One program for every block (each a module of its own), checked once.
  const checked = new Map<string, readonly ts.Diagnostic[]>();
  beforeAll(() => {
    const config = ts.readConfigFile(join(root, "tsconfig.json"), ts.sys.readFile);
    const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
    const paths = Object.fromEntries(
      Object.entries(entries).map(([name, target]) => [name, [join(root, target)]]),
    );
    const files = blocks.map((code, i) => {
      const file = join(dir, `check-${i + 1}.mts`);
      writeFileSync(file, code);
      return file;
    });
    const program = ts.createProgram(files, { ...options, noEmit: true, paths });
    for (const file of files) {
      const source = program.getSourceFile(file);
      if (!source) throw new Error(`${file} is not in the program`);
      checked.set(file, [
        ...program.getSyntacticDiagnostics(source),
        ...program.getSemanticDiagnostics(source),
      ]);
    }
  }, 60_000);

  blocks.forEach((code, i) => {
    it(`type-checks block ${i + 1} (${heading(i)})`, () => {
      const diagnostics = checked.get(join(dir, `check-${i + 1}.mts`));
      expect(diagnostics).toBeDefined();
      const text = ts.formatDiagnostics(diagnostics ?? [], {
        getCanonicalFileName: (f) => f,
        getCurrentDirectory: () => root,
        getNewLine: () => "\n",
      });
      expect(text).toBe("");
    });

    it(`runs block ${i + 1} (${heading(i)})`, async () => {
      const file = join(dir, `block-${i + 1}.mts`);
      writeFileSync(file, rewrite(code));
      const redis = inject("redisUrl" as never) as string | undefined;
      const env = { ...process.env, ...(redis ? { REDIS_URL: redis } : {}) };
      if (/process\.env\.REDIS_URL/.test(code) && !redis) {
        console.warn(`README block ${i + 1} needs Redis and none is running: skipped`);
        return;
      }
      const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
        execFile(
          process.execPath,
          ["--import", "tsx", file],
          { cwd: root, env, timeout: 30_000 },
          (error, stdout, stderr) => {
            resolve({
              code: error ? ((error as { code?: number }).code ?? 1) : 0,
              out: stdout + stderr,
            });
          },
        );
      });
      expect(result.code, result.out).toBe(0);
    }, 40_000);
  });
});
