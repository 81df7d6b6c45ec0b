import { describe, expect, it } from "vitest";
import { DEFAULT_REDIS_RETRY, isTransientRedisError } from "../../../src/adapters/redis/index.js";
import { callRedis } from "../../../src/adapters/redis/redis-call.js";
import { type Clock, isRelayError, ManualClock, RelayError } from "../../../src/core/index.js";

/** A clock whose timers fire on the next microtask, recording the delays asked for. */
function instantClock(delays: number[]): Clock {
  const m = new ManualClock();
  return {
    now: () => m.now(),
    setTimeout(fn, ms) {
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
      { attempts: 4, minDelayMs: 1, maxDelayMs: 2 },
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
});
