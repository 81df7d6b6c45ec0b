export * from "./gateway.js";
export * from "./limits.js";
export * from "./presence-bridge.js";
export * from "./token-bucket.js";
