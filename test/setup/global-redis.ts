/**
 * vitest globalSetup: starts one real `redis-server` on a free loopback port for the whole
 * run and hands its URL to tests as `inject("redisUrl")` (see
 * test/integration/redis/redis-helpers.ts). Never the system Redis on 6379.
 *
 * - `RELAYKIT_REDIS_URL` set: use that server instead of starting one.
 * - Started: also exported as `RELAYKIT_TEST_REDIS_URL` for processes the tests spawn.
 * - Cannot start, `CI=true`: throw, failing the run.
 * - Cannot start otherwise: print a loud warning, provide nothing; Redis tests skip.
 */
import type { TestProject } from "vitest/node";
import { type RedisServer, startRedisServer } from "../integration/redis/redis-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** URL of the test run's Redis, absent when none could be started (tests skip). */
    redisUrl?: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.RELAYKIT_REDIS_URL;
  if (external) {
    project.provide("redisUrl", external);
    return async () => {};
  }
  let server: RedisServer;
  try {
    server = await startRedisServer();
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    if (process.env.CI === "true") {
      throw new Error(`CI=true and the test Redis could not start: ${reason}`, { cause: e });
    }
    const bar = "!".repeat(78);
    console.warn(
      [
        "",
        bar,
        "!!  REDIS INTEGRATION TESTS WILL BE SKIPPED",
        "!!  Could not start a test redis-server:",
        ...reason.split("\n").map((l) => `!!    ${l}`),
        "!!  Install redis-server (apt-get install redis-server), set REDIS_SERVER_BIN,",
        "!!  or point RELAYKIT_REDIS_URL at a disposable server. In CI this is a failure.",
        bar,
        "",
      ].join("\n"),
    );
    return async () => {};
  }
  project.provide("redisUrl", server.url);
  // For processes tests spawn (cluster nodes): they inherit the environment.
  process.env.RELAYKIT_TEST_REDIS_URL = server.url;
  return async () => {
    delete process.env.RELAYKIT_TEST_REDIS_URL;
    await server.dispose();
  };
}
