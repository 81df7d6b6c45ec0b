export type { RequestCredentials } from "../http/index.js";
export * from "./subprotocol.js";
export * from "./ws-gateway.js";
export * from "./ws-transport.js";
