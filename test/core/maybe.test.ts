import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { andThen, drive, driveAsync, isPromiseLike, type Steps } from "../../src/core/maybe.js";

function* sum(values: readonly (number | Promise<number>)[]): Steps<number> {
  let total = 0;
  for (const v of values) total += (yield v) as number;
  return total;
}

describe("drive", () => {
  it("finishes before returning when every step answers at once", () => {
    const r = drive(sum([1, 2, 3]));
    expect(isPromiseLike(r)).toBe(false);
    expect(r).toBe(6);
  });

  it("turns async at the first promise and keeps the order of steps", async () => {
    const seen: number[] = [];
    function* steps(): Steps<number> {
      seen.push((yield 1) as number);
      seen.push((yield Promise.resolve(2)) as number);
      seen.push((yield 3) as number);
      seen.push((yield Promise.resolve(4)) as number);
      return seen.length;
    }
    const r = drive(steps());
    expect(isPromiseLike(r)).toBe(true);
    expect(seen).toEqual([1]);
    expect(await r).toBe(4);
    expect(seen).toEqual([1, 2, 3, 4]);
  });

  it("throws synchronously before the first promise, rejects after it", async () => {
    function* early(): Steps<number> {
      yield 1;
      throw new Error("early");
    }
    function* late(): Steps<number> {
      yield Promise.resolve(1);
      throw new Error("late");
    }
    expect(() => drive(early())).toThrow("early");
    await expect(drive(late())).rejects.toThrow("late");
    await expect(driveAsync(early())).rejects.toThrow("early");
  });

  it("hands a rejected step to the generator, which may catch it", async () => {
    function* steps(): Steps<string> {
      try {
        yield Promise.reject(new Error("store down"));
        return "not reached";
      } catch (e) {
        return `caught ${(e as Error).message}`;
      }
    }
    expect(await drive(steps())).toBe("caught store down");
  });

  it("gives the same answer whichever steps are promises", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.integer(), fc.boolean())), async (xs) => {
        const values = xs.map(([n, later]) => (later ? Promise.resolve(n) : n));
        const expected = xs.reduce((a, [n]) => a + n, 0);
        const r = drive(sum(values));
        expect(isPromiseLike(r)).toBe(xs.some(([, later]) => later));
        expect(await r).toBe(expected);
      }),
    );
  });
});

describe("andThen / isPromiseLike", () => {
  it("applies at once to a value and later to a promise", async () => {
    expect(andThen(2, (x) => x * 3)).toBe(6);
    const p = andThen(Promise.resolve(2), (x) => x * 3);
    expect(isPromiseLike(p)).toBe(true);
    expect(await p).toBe(6);
  });

  it("knows thenables from values", () => {
    // biome-ignore lint/suspicious/noThenProperty: a thenable is what is being recognised
    expect(isPromiseLike({ then: () => undefined })).toBe(true);
    expect(isPromiseLike(null)).toBe(false);
    expect(isPromiseLike(undefined)).toBe(false);
    // biome-ignore lint/suspicious/noThenProperty: a `then` that is not a function
    expect(isPromiseLike({ then: 1 })).toBe(false);
    expect(isPromiseLike(0)).toBe(false);
  });
});
