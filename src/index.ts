export * from "./core/index.js";
export * from "./protocol/index.js";
