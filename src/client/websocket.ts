/**
 * The few parts of a WebSocket the client uses. The browser's `WebSocket`, Node 22's global
 * one and the `ws` package's class all fit, so the client never imports a socket library.
 */

/** A handler type checked bivariantly, so both DOM and `ws` event classes are accepted. */
type Handler<E> = { bivarianceHack(event: E): void }["bivarianceHack"];

/** The message event: `data` is a string for text frames. */
export interface SocketMessageEvent {
  readonly data: unknown;
}

/** The close event. */
export interface SocketCloseEvent {
  readonly code: number;
  readonly reason: string;
}

/** One WebSocket, as the client sees it. */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed (the standard values). */
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown> | null;
  onmessage: Handler<SocketMessageEvent> | null;
  onclose: Handler<SocketCloseEvent> | null;
  onerror: Handler<unknown> | null;
}

/** A WebSocket class: `globalThis.WebSocket` in browsers and Node 22, or `ws`'s `WebSocket`. */
export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
) => WebSocketLike;

/** The standard `readyState` of an open socket. */
export const SOCKET_OPEN = 1;
