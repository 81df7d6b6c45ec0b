/**
 * One case of a conformance suite: framework-agnostic, so the same suite runs in vitest,
 * jest, mocha or node:test. `run` rejects (through node:assert) when the port misbehaves.
 */
export interface ConformanceCase {
  readonly name: string;
  readonly run: () => Promise<void>;
}

/**
 * Builds a fresh, empty port for each case, and disposes of it after.
 * `dispose` is optional; Redis implementations use it to flush their keys and disconnect.
 */
export interface PortFactory<P> {
  create(): Promise<P>;
  dispose?(port: P): Promise<void>;
}
