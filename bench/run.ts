/**
 * `npm run bench [-- <filter>] [--json]`: runs every `bench/*.bench.ts` whose suite name
 * (file stem) or figure names match the filter. Prints a table, or one JSON object per
 * figure per line with `--json`.
 */
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

/** A suite runs when a filter names part of it, or names one of its figures (`suite.figure`). */
const matches = (suite: string) =>
  filters.length === 0 || filters.some((f) => suite.includes(f) || f.startsWith(`${suite}.`));

const figures: Figure[] = [];
for (const file of files) {
  const suite = file.replace(/\.bench\.ts$/, "");
  if (!matches(suite)) continue;
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
