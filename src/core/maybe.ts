/**
 * Values that may or may not be promises, and a runner for code written once over them.
 *
 * A port (a store, a directory) answers with a promise when it does I/O, and may answer at
 * once when it lives in this process. The hot paths (a `send`, a receipt) are written as
 * generators that `yield` each port's answer (`const n = (yield seq.next(c)) as number`; a
 * helper generator per step would cost as much as an `await`): {@link drive} runs them synchronously as long
 * as every answer is a plain value, and turns into an async run at the first real promise.
 * One code path, no promise per step on the in-memory default (graphql-js resolves fields
 * the same way with its `PromiseOrValue`).
 */

/** A value, or a promise of it: what a port may answer. Always safe to `await`. */
export type MaybePromise<T> = T | PromiseLike<T>;

/** Whether `v` is a promise (any thenable). */
export function isPromiseLike<T>(v: MaybePromise<T>): v is PromiseLike<T> {
  return (
    v !== null &&
    (typeof v === "object" || typeof v === "function") &&
    typeof (v as PromiseLike<T>).then === "function"
  );
}

/** What {@link drive} runs: a generator whose yields are port answers. */
export type Steps<T> = Generator<unknown, T, unknown>;

/**
 * Runs `steps` to the end. Plain yields are handed straight back; at the first promise the
 * rest runs asynchronously and a promise is returned. A throw before that point is thrown
 * here; after it, the promise rejects.
 */
export function drive<T>(steps: Steps<T>): MaybePromise<T> {
  let step = steps.next();
  while (!step.done) {
    const v = step.value;
    if (isPromiseLike(v)) return resume(steps, v);
    step = steps.next(v);
  }
  return step.value;
}

async function resume<T>(steps: Steps<T>, first: PromiseLike<unknown>): Promise<T> {
  let pending: unknown = first;
  for (;;) {
    let step: IteratorResult<unknown, T>;
    try {
      step = steps.next(await pending);
    } catch (e) {
      step = steps.throw(e);
    }
    if (step.done) return step.value;
    pending = step.value;
  }
}

/** `drive`, always as a promise (a sync throw becomes a rejection). */
export function driveAsync<T>(steps: Steps<T>): Promise<T> {
  try {
    return Promise.resolve(drive(steps));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** `f(v)` now when `v` is a plain value, or once it resolves. */
export function andThen<T, R>(
  v: MaybePromise<T>,
  f: (value: T) => MaybePromise<R>,
): MaybePromise<R> {
  return isPromiseLike(v) ? Promise.resolve(v).then(f) : f(v);
}
