import pRetry from "p-retry";
import { afterEach, describe, expect, it, vi } from "vitest";
import { seededRandom } from "../../src/core/index.js";
import {
  P_RETRY_DEFAULTS,
  type RetryPolicy,
  resolveRetryPolicy,
  retryDelay,
  retrySchedule,
} from "../../src/queue/index.js";

/** Runs p-retry 7 itself on an always-failing task under fake timers and records its waits. */
async function pRetryDelays(options: Partial<RetryPolicy>, random?: number): Promise<number[]> {
  vi.useFakeTimers();
  if (random !== undefined) vi.spyOn(Math, "random").mockReturnValue(random);
  const spy = vi.spyOn(globalThis, "setTimeout");
  const run = pRetry(
    () => {
      throw new Error("boom");
    },
    { ...options },
  ).catch((e: unknown) => e);
  await vi.runAllTimersAsync();
  expect(await run).toBeInstanceOf(Error);
  return spy.mock.calls.map((c) => c[1] as number);
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("retryDelay", () => {
  it("follows p-retry's documented formula", () => {
    const p = resolveRetryPolicy({ retries: 5, factor: 2, minTimeout: 1000 });
    expect(retrySchedule(p)).toEqual([1000, 2000, 4000, 8000, 16000]);
    const capped = resolveRetryPolicy({ retries: 5, factor: 3, minTimeout: 100, maxTimeout: 1000 });
    expect(retrySchedule(capped)).toEqual([100, 300, 900, 1000, 1000]);
    expect(retryDelay(p, 0)).toBe(1000); // attempt numbers below 1 count as the first retry
  });

  it("has p-retry's defaults", () => {
    expect(P_RETRY_DEFAULTS).toEqual({
      retries: 10,
      factor: 2,
      minTimeout: 1000,
      maxTimeout: Number.POSITIVE_INFINITY,
      randomize: false,
    });
    expect(resolveRetryPolicy({ factor: 0 }).factor).toBe(1);
    expect(resolveRetryPolicy({ factor: undefined as unknown as number }).factor).toBe(2);
  });

  it("randomize multiplies by 1 + random, then rounds, then caps", () => {
    const p = resolveRetryPolicy({ minTimeout: 100, factor: 2, randomize: true, maxTimeout: 700 });
    const fixed = { next: () => 0.5 };
    expect([1, 2, 3, 4].map((a) => retryDelay(p, a, fixed))).toEqual([150, 300, 600, 700]);
    const r = seededRandom(1);
    for (let a = 1; a < 20; a++) {
      const d = retryDelay({ ...p, maxTimeout: Number.POSITIVE_INFINITY }, a, r);
      expect(d).toBeGreaterThanOrEqual(100 * 2 ** (a - 1));
      expect(d).toBeLessThanOrEqual(200 * 2 ** (a - 1));
    }
  });

  const cases: Array<[string, Partial<RetryPolicy>, number | undefined]> = [
    ["defaults", {}, undefined],
    ["factor 3, cap", { retries: 6, factor: 3, minTimeout: 50, maxTimeout: 2000 }, undefined],
    ["fractional factor", { retries: 4, factor: 1.5, minTimeout: 333 }, undefined],
    ["randomize", { retries: 5, minTimeout: 100, randomize: true }, 0.37],
    ["randomize with cap", { retries: 5, minTimeout: 100, randomize: true, maxTimeout: 900 }, 0.99],
  ];
  for (const [name, options, random] of cases) {
    it(`matches p-retry 7's real waits: ${name}`, async () => {
      const expected = retrySchedule(resolveRetryPolicy(options), {
        next: () => random ?? 0,
      });
      expect(await pRetryDelays(options, random)).toEqual(expected);
    });
  }
});
