/**
 * Bundles the client SDK (src/client) for browsers as one ES module, served by the demo
 * server at `/client.js`. The page imports it: `import { RelayClient } from "/client.js"`.
 */
import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";

const entry = fileURLToPath(new URL("../../src/client/index.ts", import.meta.url));

/**
 * src/core/system.ts (the default clock and ids) imports `node:crypto` for `randomBytes`.
 * Browsers have no such module: this plugin swaps in the Web Crypto equivalent.
 */
const browserCrypto: Plugin = {
  name: "relaykit-browser-crypto",
  setup(b) {
    b.onResolve({ filter: /^(node:)?crypto$/ }, () => ({ path: "crypto", namespace: "shim" }));
    b.onLoad({ filter: /.*/, namespace: "shim" }, () => ({
      loader: "js",
      contents: `
        export function randomBytes(n) {
          const bytes = new Uint8Array(n);
          globalThis.crypto.getRandomValues(bytes);
          return {
            toString(encoding) {
              if (encoding !== "base64url") throw new Error("shim supports base64url only");
              let s = "";
              for (const b of bytes) s += String.fromCharCode(b);
              return btoa(s).replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
            },
          };
        }`,
    }));
  },
};

/**
 * zod re-exports every translation of its error messages (`z.locales`, about 260 KB
 * minified); the client never uses them (English is configured separately), so they are
 * left out of the bundle.
 */
const noZodLocales: Plugin = {
  name: "relaykit-no-zod-locales",
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]/.test(args.importer) ? { path: "zod-locales", namespace: "empty" } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "empty" }, () => ({
      loader: "js",
      contents: "export {};",
    }));
  },
};

let cached: Promise<string> | undefined;

/**
 * The browser bundle of `relaykit/client` as JavaScript source (ESM, minified). Built once
 * per process and cached; a failed build is not cached.
 */
export function bundleClient(): Promise<string> {
  cached ??= build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    write: false,
    legalComments: "none",
    plugins: [browserCrypto, noZodLocales],
  }).then(
    (result) => {
      const out = result.outputFiles[0];
      if (!out) throw new Error("esbuild produced no output");
      return out.text;
    },
    (error: unknown) => {
      cached = undefined;
      throw error;
    },
  );
  return cached;
}
