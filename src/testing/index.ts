/**
 * `relaykit/testing`: the simulation kit (a deterministic cluster with faults and invariant
 * checkers) and the conformance suites every port implementation can run.
 */

export * from "./conformance/device-registry.js";
export * from "./conformance/group-store.js";
export * from "./conformance/message-store.js";
export * from "./conformance/node-bus.js";
export * from "./conformance/node-registry.js";
export * from "./conformance/presence-store.js";
export * from "./conformance/queue-store.js";
export * from "./conformance/receipt-store.js";
export * from "./conformance/sequence-store.js";
export * from "./conformance/session-directory.js";
export * from "./conformance/types.js";
export * from "./faults.js";
export * from "./fence.js";
export * from "./invariants.js";
export * from "./settle.js";
export * from "./sim-bus.js";
export * from "./sim-client.js";
export * from "./simulation.js";
export * from "./trace.js";
export * from "./workload.js";
