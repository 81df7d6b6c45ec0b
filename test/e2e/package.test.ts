/**
 * The published package as a user gets it: `npm pack` on a copy of the sources with no
 * `dist/` (so `prepack` must build), the tarball installed into an empty project, and every
 * subpath imported from ESM and from CommonJS, and type-checked from both.
 *
 * The build inside `npm pack` takes ~30 s on an idle machine (the declaration files of both
 * formats); the timeouts are wide for a loaded CI machine.
 *
 * Offline on purpose: the dependencies and peers are packed from this checkout's
 * node_modules and installed beside the tarball, so npm never asks the registry.
 */
import { execFile } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../", import.meta.url));
const work = join(root, ".bench-tmp", "package");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  name: string;
  version: string;
  exports: Record<string, unknown>;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};
const subpaths = Object.keys(pkg.exports)
  .filter((k) => k !== "./package.json")
  .map((k) => (k === "." ? pkg.name : `${pkg.name}/${k.slice(2)}`));

function run(cmd: string, args: string[], cwd: string, timeout = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, timeout, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${cmd} ${args.join(" ")} failed:\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Every package directory the runtime closure of `names` needs, from this checkout. */
function closure(names: readonly string[]): Map<string, string> {
  const found = new Map<string, string>();
  const visit = (name: string, from: string): void => {
    let at: string | undefined;
    for (let dir = from; dir.length >= root.length - 1; dir = dirname(dir)) {
      const candidate = join(dir, "node_modules", name);
      if (existsSync(join(candidate, "package.json"))) {
        at = candidate;
        break;
      }
    }
    if (!at) throw new Error(`${name} is not installed under ${root}`);
    const seen = found.get(name);
    if (seen !== undefined) {
      if (seen !== at) throw new Error(`two versions of ${name}: ${seen} and ${at}`);
      return;
    }
    found.set(name, at);
    const meta = JSON.parse(readFileSync(join(at, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
    };
    for (const dep of Object.keys(meta.dependencies ?? {})) visit(dep, at);
  };
  for (const name of names) visit(name, root);
  return found;
}

describe("the packed package", () => {
  const source = join(work, "source");
  const packs = join(work, "packs");
  const app = join(work, "app");

  beforeAll(async () => {
    rmSync(work, { recursive: true, force: true });
    mkdirSync(source, { recursive: true });
    mkdirSync(packs);
    mkdirSync(app);
    for (const f of ["package.json", "tsup.config.ts", "tsconfig.json", "README.md"]) {
      cpSync(join(root, f), join(source, f));
    }
    cpSync(join(root, "src"), join(source, "src"), { recursive: true });
    symlinkSync(join(root, "node_modules"), join(source, "node_modules"), "dir");
    // The copy has no dist/: `npm pack` must build it through `prepack`.
    await run("npm", ["pack", "--pack-destination", packs], source, 600_000);

    // What a TypeScript user adds: the peers, and the types of node and ws.
    const deps = closure([
      ...Object.keys(pkg.dependencies),
      ...Object.keys(pkg.peerDependencies),
      "@types/node",
      "@types/ws",
    ]);
    await run(
      "npm",
      ["pack", "--ignore-scripts", "--pack-destination", packs, ...deps.values()],
      root,
    );

    writeFileSync(
      join(app, "package.json"),
      JSON.stringify({ name: "consumer", version: "1.0.0", private: true }),
    );
    const tarballs = readdirSync(packs).map((f) => join(packs, f));
    await run(
      "npm",
      ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", ...tarballs],
      app,
    );
  }, 900_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("ships the build and nothing of the sources", async () => {
    const listed = readdirSync(join(app, "node_modules", pkg.name, "dist"));
    for (const sub of subpaths) {
      const base = sub === pkg.name ? "index" : sub.slice(pkg.name.length + 1);
      for (const ext of [".js", ".cjs", ".d.ts", ".d.cts"]) {
        expect(listed).toContain(`${base}${ext}`);
      }
    }
    expect(existsSync(join(app, "node_modules", pkg.name, "src"))).toBe(false);
  });

  it("defines each class once per format, whichever subpath loads it", () => {
    const dist = join(app, "node_modules", pkg.name, "dist");
    for (const ext of [".js", ".cjs"]) {
      const where = new Map<string, string[]>();
      for (const file of readdirSync(dist).filter((f) => f.endsWith(ext))) {
        const code = readFileSync(join(dist, file), "utf8");
        for (const m of code.matchAll(/^(?:var|let|const) ([A-Za-z_$][\w$]*) = class\b/gm)) {
          where.set(m[1]!, [...(where.get(m[1]!) ?? []), file]);
        }
      }
      for (const name of ["RelayError", "Gateway", "Router", "DeliveryQueue"]) {
        expect(where.get(name), `${name}${ext}`).toHaveLength(1);
      }
      const twice = [...where].filter(([, files]) => files.length > 1);
      expect(twice, ext).toEqual([]);
    }
  });

  it("imports every subpath from ESM and CommonJS, with one RelayError across them", async () => {
    const probe = (load: string) => `
      const names = ${JSON.stringify(subpaths)};
      const out = {};
      for (const name of names) out[name] = Object.keys(${load}).length;
      const { isRelayError, RelayError } = ${load.replace("name", `"${pkg.name}"`)};
      const ws = ${load.replace("name", `"${pkg.name}/ws"`)};
      try { ws.createWsGateway({}); } catch (e) {
        out.wsError = [isRelayError(e), e instanceof RelayError, e.code];
      }
      console.log(JSON.stringify(out));
    `;
    writeFileSync(join(app, "probe.mjs"), probe("await import(name)"));
    writeFileSync(join(app, "probe.cjs"), probe("require(name)"));
    for (const file of ["probe.mjs", "probe.cjs"]) {
      const out = JSON.parse(await run(process.execPath, [file], app)) as Record<string, unknown>;
      for (const sub of subpaths) expect(out[sub], `${file}: ${sub}`).toBeGreaterThan(0);
      expect(out.wsError, file).toEqual([true, true, "invalid_option"]);
    }
  }, 30_000);

  it("type-checks every subpath from an ESM and a CommonJS TypeScript file", async () => {
    const lines = subpaths.map((s, i) => `import * as m${i} from "${s}";\nvoid m${i};`);
    const check = `${lines.join("\n")}
import { isRelayError, type RelayError } from "${pkg.name}";
const e: unknown = null;
if (isRelayError(e)) { const code: RelayError["code"] = e.code; void code; }
`;
    writeFileSync(join(app, "check.mts"), check);
    writeFileSync(join(app, "check.cts"), check);
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "node16",
          moduleResolution: "node16",
          target: "ES2022",
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ["node"],
        },
        files: ["check.mts", "check.cts"],
      }),
    );
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
    await expect(run(process.execPath, [tsc, "-p", "."], app)).resolves.toBe("");
  }, 60_000);
});
