import { EventEmitter } from "eventemitter3";

/**
 * A typed event emitter (eventemitter3 underneath). `Events` maps each event name to its
 * listener signature.
 * @example class Tracker extends TypedEmitter<{ change: (s: Status) => void }> {}
 */
export class TypedEmitter<
  Events extends EventEmitter.ValidEventTypes,
> extends EventEmitter<Events> {}
