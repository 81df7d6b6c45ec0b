export * from "./device-registry.js";
export * from "./message-store.js";
export * from "./node-bus.js";
export * from "./outbox.js";
export * from "./router.js";
export * from "./sequence-store.js";
export * from "./session-directory.js";
export * from "./stale-devices.js";
