export * from "./ack-watch.js";
export * from "./delivery-queue.js";
export * from "./load-signal.js";
export * from "./queue-store.js";
export * from "./retry-policy.js";
export * from "./sender-quota.js";
