import { defineConfig } from "tsup";

export default defineConfig({
  entry: {
    index: "src/index.ts",
    ws: "src/adapters/ws/index.ts",
    http: "src/adapters/http/index.ts",
    testing: "src/testing/index.ts",
    redis: "src/adapters/redis/index.ts",
    client: "src/client/index.ts",
    auth: "src/auth/index.ts",
    metrics: "src/metrics/index.ts",
  },
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: true,
  target: "node20",
  treeshake: true,
  // Shared chunks in both formats: each class (RelayError, Gateway...) is defined once, so
  // `instanceof` holds across subpaths in CommonJS too (tsup splits only ESM by default).
  splitting: true,
  external: ["ws", "ioredis", "jose", "prom-client"],
});
