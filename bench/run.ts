/**
 * `npm run bench [-- <filter>] [--json]`: runs every `bench/*.bench.ts` whose suite name
 * (file stem) or figure names match the filter. Prints a table, or one JSON object per
 * figure per line with `--json`. When several suites run, each runs in its own process.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type BenchContext, type Figure, rates } from "./harness.js";

const args = process.argv.slice(2);
const json = args.includes("--json");
const filters = args.filter((a) => !a.startsWith("--"));
const here = dirname(fileURLToPath(import.meta.url));
const files = readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts"))
  .sort();

/**
 * A suite runs when a filter names part of it, or names one of its figures (`suite.figure`).
 * A `-` in a suite's name matches a `.` (cluster-e2e.bench.ts holds `cluster.e2e`).
 */
const matches = (suite: string) =>
  filters.length === 0 ||
  filters.some(
    (f) => suite.replace(/-/g, ".").includes(f) || suite.includes(f) || f.startsWith(`${suite}.`),
  );

const figures: Figure[] = [];
/** Set in a child: run only this suite (see below). */
const only = args.find((a) => a.startsWith("--suite="))?.slice("--suite=".length);
const suites = files
  .map((f) => f.replace(/\.bench\.ts$/, ""))
  .filter((s) => (only === undefined ? matches(s) : s === only));

// Each suite runs in a fresh process when several do: a suite that builds a million-user
// heap would otherwise slow the ones after it (GC), and figures would depend on file order.
if (only === undefined && suites.length > 1) {
  for (const suite of suites) {
    if (!json) console.error(`# ${suite}`);
    const child = spawnSync(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url), ...args, `--suite=${suite}`, "--json"],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 64 * 1024 * 1024 },
    );
    if (child.status !== 0) {
      console.error(`bench: suite ${suite} failed (exit ${child.status})`);
      process.exitCode = 1;
    }
    for (const line of child.stdout.split("\n")) {
      if (!line.startsWith("{")) continue;
      const figure = JSON.parse(line) as Figure;
      figures.push(figure);
      if (json) console.log(line);
    }
  }
}

for (const suite of only === undefined && suites.length > 1 ? [] : suites) {
  const file = `${suite}.bench.ts`;
  const mod = (await import(pathToFileURL(join(here, file)).href)) as {
    default: (ctx: BenchContext) => Promise<void>;
  };
  const ctx: BenchContext = {
    wants: (figure) =>
      filters.length === 0 || filters.some((f) => figure.includes(f) || suite.includes(f)),
    report(figure) {
      figures.push(figure);
      if (json) console.log(JSON.stringify(figure));
    },
    async rate(name, fn, opts = {}) {
      const r = await rates({ [name]: { fn, batch: opts.batch ?? 1 } }, opts.time ?? 1000);
      return r[name] ?? 0;
    },
  };
  if (!json) console.error(`# ${suite}`);
  await mod.default(ctx);
}

if (!json) {
  const rows = figures.map((f) => {
    const { bench, ...rest } = f;
    const main =
      typeof f.ops_per_s === "number"
        ? `${Math.round(f.ops_per_s).toLocaleString("en-US")} ops/s`
        : `${Number((f.value as number).toPrecision(6)).toLocaleString("en-US")} ${String(f.unit)}`;
    const extra = Object.entries(rest)
      .filter(([k]) => k !== "ops_per_s" && k !== "value" && k !== "unit")
      .map(([k, v]) => `${k}=${typeof v === "number" ? Number(v.toPrecision(4)) : String(v)}`)
      .join(" ");
    return { figure: bench, result: main, details: extra };
  });
  console.table(rows);
}
process.exit(0);
