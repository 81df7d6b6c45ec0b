/**
 * Resolves after every pending promise continuation has run: it waits one macrotask turn,
 * and Node drains the whole microtask queue (including microtasks queued by microtasks)
 * before any macrotask. The simulation calls it between clock steps so async work settles
 * in the same order on every run.
 * @remarks It involves no time: the order of what settles depends only on the program.
 */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
