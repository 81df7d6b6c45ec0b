import { describe, expect, it } from "vitest";
import { DEFAULT_REDIS_RETRY, isTransientRedisError } from "../../../src/adapters/redis/index.js";
import { callRedis } from "../../../src/adapters/redis/redis-call.js";
import { type Clock, isRelayError, ManualClock, RelayError } from "../../../src/core/index.js";

/**
 * A clock whose backoff timers fire on the next microtask, recording the delays asked for;
 * the operation's deadline (the default 2 s, or longer) never fires.
 */
function instantClock(delays: number[]): Clock {
  const m = new ManualClock();
  return {
    now: () => m.now(),
    setTimeout(fn, ms) {
      if (ms >= DEFAULT_REDIS_RETRY.timeoutMs) return { id: 0 };
      delays.push(ms);
      queueMicrotask(fn);
      return { id: 0 };
    },
    setInterval: (fn, ms) => m.setInterval(fn, ms),
    clear: () => {},
  };
}

const replyError = (msg: string) => Object.assign(new Error(msg), { name: "ReplyError" });

describe("callRedis", () => {
  it("classifies errors: connection trouble and LOADING/BUSY are transient, bad commands are not", () => {
    expect(isTransientRedisError(new Error("Connection is closed."))).toBe(true);
    expect(isTransientRedisError(new Error("Command timed out"))).toBe(true);
    expect(
      isTransientRedisError(replyError("LOADING Redis is loading the dataset in memory")),
    ).toBe(true);
    expect(isTransientRedisError(replyError("CLUSTERDOWN The cluster is down"))).toBe(true);
    expect(isTransientRedisError(replyError("ERR wrong number of arguments"))).toBe(false);
    expect(isTransientRedisError("not an error")).toBe(false);
  });

  it("retries transient failures with doubling delays, then succeeds", async () => {
    const delays: number[] = [];
    let calls = 0;
    const v = await callRedis(
      "op",
      async () => {
        if (++calls < 3) throw new Error("Connection is closed.");
        return "ok";
      },
      instantClock(delays),
    );
    expect(v).toBe("ok");
    expect(delays).toEqual([DEFAULT_REDIS_RETRY.minDelayMs, DEFAULT_REDIS_RETRY.minDelayMs * 2]);
  });

  it("gives store_unavailable with the cause after the last attempt", async () => {
    const cause = new Error("connect ECONNREFUSED");
    const err = await callRedis(
      "Thing.op",
      async () => {
        throw cause;
      },
      instantClock([]),
      { attempts: 4, minDelayMs: 1, maxDelayMs: 2, timeoutMs: 2000 },
    ).catch((e: unknown) => e);
    expect(isRelayError(err, "store_unavailable")).toBe(true);
    expect((err as RelayError).message).toBe(
      "Thing.op failed after 4 attempt(s): connect ECONNREFUSED",
    );
    expect((err as RelayError).cause).toBe(cause);
  });

  it("does not retry a bad command, and passes RelayErrors through", async () => {
    let calls = 0;
    const err = await callRedis(
      "op",
      async () => {
        calls++;
        throw replyError("ERR unknown command");
      },
      instantClock([]),
    ).catch((e: unknown) => e);
    expect(calls).toBe(1);
    expect(isRelayError(err, "store_unavailable")).toBe(true);
    const own = new RelayError("internal", "corrupt");
    await expect(callRedis("op", () => Promise.reject(own), instantClock([]))).rejects.toBe(own);
  });

  it("fails with store_unavailable once timeoutMs has passed, however long Redis takes", async () => {
    const clock = new ManualClock(0);
    let calls = 0;
    const hung = callRedis(
      "Thing.op",
      () => {
        calls++;
        return new Promise<never>(() => {}); // a paused Redis: never answers
      },
      clock,
      { ...DEFAULT_REDIS_RETRY, timeoutMs: 300 },
    ).catch((e: unknown) => e);
    let settled = false;
    void hung.then(() => {
      settled = true;
    });
    clock.advance(299);
    await Promise.resolve();
    expect(settled).toBe(false);
    clock.advance(1);
    const err = await hung;
    expect(isRelayError(err, "store_unavailable")).toBe(true);
    expect(calls).toBe(1);
  });

  it("does not start a try that could not finish before the deadline", async () => {
    const clock = new ManualClock(0);
    let calls = 0;
    const p = callRedis(
      "Thing.op",
      async () => {
        calls++;
        throw new Error("Connection is closed.");
      },
      clock,
      { attempts: 10, minDelayMs: 100, maxDelayMs: 100, timeoutMs: 250 },
    ).catch((e: unknown) => e);
    for (let i = 0; i < 5; i++) {
      await Promise.resolve();
      clock.advance(100);
    }
    expect(isRelayError(await p, "store_unavailable")).toBe(true);
    expect(calls).toBeLessThanOrEqual(3);
  });
});
