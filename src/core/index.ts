export * from "./clock.js";
export * from "./errors.js";
export * from "./events.js";
export * from "./ids.js";
export { isPromiseLike, type MaybePromise } from "./maybe.js";
export { assertInteger, parseOptions } from "./options.js";
export * from "./random.js";
export { monotonicNow, systemClock, systemIds, systemRandom } from "./system.js";
/** Shared types: Session, Envelope, Priority, Target, Attachment, SystemEvent, GroupReceiptPolicy. */
export type * from "./types.js";
