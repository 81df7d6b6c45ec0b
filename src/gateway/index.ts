export * from "./gateway.js";
export * from "./presence-bridge.js";
