/**
 * `relaykit/client`: the client SDK for browsers and Node. It imports no socket library:
 * pass a WebSocket class (the global one, or `ws`'s).
 */

/** The 1:1 conversation id of two users (as the server makes it), and reading one back. */
export { directConversation, directPeers } from "../core/ids.js";
export * from "./backoff.js";
export * from "./client.js";
export * from "./outgoing-status.js";
export * from "./recent-ids.js";
export * from "./websocket.js";
