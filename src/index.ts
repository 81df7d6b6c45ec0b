export * from "./core/index.js";
export * from "./gateway/index.js";
export * from "./protocol/index.js";
export * from "./router/index.js";
