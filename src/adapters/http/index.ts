export * from "./credentials.js";
export * from "./http-handler.js";
export * from "./status.js";
