/**
 * `relaykit/auth`: an `authenticate` hook that verifies JWT bearer tokens with `jose`
 * (an optional peer dependency: `npm install jose`).
 */
export * from "./jwt-authenticate.js";
