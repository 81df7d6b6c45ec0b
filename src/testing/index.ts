/**
 * `relaykit/testing`: the simulation kit (a deterministic cluster with faults and invariant
 * checkers) and the conformance suites every port implementation can run.
 */
export * from "./conformance/types.js";
export * from "./faults.js";
export * from "./fence.js";
export * from "./invariants.js";
export * from "./queue-outbox.js";
export * from "./settle.js";
export * from "./sim-bus.js";
export * from "./sim-client.js";
export * from "./simulation.js";
export * from "./trace.js";
export * from "./workload.js";
