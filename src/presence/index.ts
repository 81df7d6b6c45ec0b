/** Presence: online / last seen, subscriptions, privacy and typing indicators. */
export * from "./presence-store.js";
export * from "./presence-tracker.js";
export * from "./privacy.js";
export * from "./status.js";
