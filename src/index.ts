export * from "./core/index.js";
export * from "./discovery/index.js";
export * from "./presence/index.js";
export * from "./gateway/index.js";
export * from "./groups/index.js";
export * from "./protocol/index.js";
export * from "./router/index.js";
export * from "./sharding/index.js";
