import type {
  SocketCloseEvent,
  SocketMessageEvent,
  WebSocketLike,
} from "../../src/client/index.js";
import type { ClientFrame, ServerFrame } from "../../src/protocol/index.js";

type Handler<E> = { bivarianceHack(event: E): void }["bivarianceHack"];

/**
 * A WebSocket the test drives by hand: `serverOpen()`, `serverSend(frame)`, `serverClose()`.
 * Every socket the client creates is recorded in `FakeSocket.all`.
 */
export class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];

  /** The socket created last. */
  static get last(): FakeSocket {
    const s = FakeSocket.all.at(-1);
    if (!s) throw new Error("no socket was created");
    return s;
  }

  static reset(): void {
    FakeSocket.all = [];
  }

  readyState = 0;
  readonly sent: string[] = [];
  closedWith: { code?: number; reason?: string } | undefined;
  onopen: Handler<unknown> | null = null;
  onmessage: Handler<SocketMessageEvent> | null = null;
  onclose: Handler<SocketCloseEvent> | null = null;
  onerror: Handler<unknown> | null = null;

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    FakeSocket.all.push(this);
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    const c: { code?: number; reason?: string } = {};
    if (code !== undefined) c.code = code;
    if (reason !== undefined) c.reason = reason;
    this.closedWith = c;
    this.readyState = 3;
  }

  /** Frames the client wrote, decoded. */
  frames(): ClientFrame[] {
    return this.sent.map((s) => JSON.parse(s) as ClientFrame);
  }

  /** Frames of one type the client wrote. */
  framesOf<T extends ClientFrame["type"]>(type: T): Extract<ClientFrame, { type: T }>[] {
    return this.frames().filter((f): f is Extract<ClientFrame, { type: T }> => f.type === type);
  }

  serverOpen(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  serverSend(frame: ServerFrame | Record<string, unknown> | string): void {
    this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
  }

  /** The connection dropped (or the server closed it). */
  serverClose(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}
