import { defineConfig } from "tsup";

export default defineConfig({
  entry: {
    index: "src/index.ts",
    ws: "src/adapters/ws/index.ts",
    http: "src/adapters/http/index.ts",
    testing: "src/testing/index.ts",
    redis: "src/adapters/redis/index.ts",
    client: "src/client/index.ts",
  },
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: true,
  target: "node20",
  treeshake: true,
  external: ["ws", "ioredis"],
});
