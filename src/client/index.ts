/**
 * `relaykit/client`: the client SDK for browsers and Node. It imports no socket library:
 * pass a WebSocket class (the global one, or `ws`'s).
 */
export * from "./backoff.js";
export * from "./client.js";
export * from "./outgoing-status.js";
export * from "./recent-ids.js";
export * from "./websocket.js";
