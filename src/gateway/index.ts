export * from "./gateway.js";
