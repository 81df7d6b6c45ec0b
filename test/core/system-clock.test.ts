import { afterEach, describe, expect, it, vi } from "vitest";
import { systemClock } from "../../src/core/index.js";

describe("systemClock", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("waits the full time past Node's 2^31 ms timer limit (30-day TTLs), and clear works across the chain", () => {
    vi.useFakeTimers();
    const day = 24 * 60 * 60 * 1000;
    let fired = 0;
    systemClock.setTimeout(() => fired++, 30 * day);
    const cleared = systemClock.setTimeout(() => fired++, 30 * day);
    vi.advanceTimersByTime(25 * day);
    systemClock.clear(cleared);
    vi.advanceTimersByTime(5 * day - 1);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(1);
    expect(fired).toBe(1);
  });
});
