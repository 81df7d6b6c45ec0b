import type { Duplex } from "node:stream";
import type { WebSocket } from "ws";
import type { Transport } from "../../gateway/index.js";

const OPEN = 1;

/**
 * Collects the transports that have frames waiting and flushes them all at the next
 * microtask checkpoint, so frames produced in one turn of work leave together.
 */
export class WriteCoalescer {
  #dirty = new Set<WsTransport>();
  #scheduled = false;
  /** Frames handed to `ws`, and the corked batches they went out in (for tests and metrics). */
  readonly stats = { frames: 0, batches: 0 };

  /** Marks a transport as having pending frames. */
  mark(transport: WsTransport): void {
    this.#dirty.add(transport);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => this.flushAll());
  }

  /** Flushes every marked transport now. */
  flushAll(): void {
    this.#scheduled = false;
    if (this.#dirty.size === 0) return;
    const dirty = this.#dirty;
    this.#dirty = new Set();
    for (const t of dirty) t.flush();
  }
}

/**
 * The gateway's {@link Transport} over one `ws` WebSocket. Frames are not written one by
 * one: they wait in a small buffer and go out together, every frame still its own
 * WebSocket message, inside one cork of the TCP socket (one `writev`, not one syscall per
 * frame). The buffer is flushed at the end of the current microtask run or as soon as it
 * holds `maxCoalesceBytes`, whichever comes first.
 */
export class WsTransport implements Transport {
  /** The WebSocket this transport writes to. */
  readonly socket: WebSocket;
  readonly #coalescer: WriteCoalescer;
  readonly #maxCoalesce: number;
  #pending: string[] = [];
  #pendingBytes = 0;
  #closed = false;

  constructor(socket: WebSocket, coalescer: WriteCoalescer, maxCoalesceBytes: number) {
    this.socket = socket;
    this.#coalescer = coalescer;
    this.#maxCoalesce = maxCoalesceBytes;
  }

  /** Bytes waiting in the coalescing buffer plus bytes `ws` and the TCP socket still hold. */
  get bufferedAmount(): number {
    return this.socket.bufferedAmount + this.#pendingBytes;
  }

  send(data: string): void {
    if (this.#closed) return;
    this.#pending.push(data);
    this.#pendingBytes += data.length;
    if (this.#pendingBytes >= this.#maxCoalesce) this.flush();
    else this.#coalescer.mark(this);
  }

  /** Writes every pending frame now, in one cork of the underlying socket. */
  flush(): void {
    if (this.#pending.length === 0) return;
    const frames = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (this.socket.readyState !== OPEN) return;
    // `_socket` is ws's underlying net.Socket; corking it makes the frames below one write.
    const raw = (this.socket as unknown as { _socket?: Duplex })._socket;
    raw?.cork();
    try {
      for (const f of frames) this.socket.send(f);
    } finally {
      raw?.uncork();
    }
    this.#coalescer.stats.frames += frames.length;
    this.#coalescer.stats.batches++;
  }

  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    if (this.socket.readyState !== OPEN) return;
    const short = Buffer.byteLength(reason) <= 123 ? reason : "";
    try {
      this.socket.close(code, short);
    } catch {
      this.socket.terminate();
    }
  }

  /** The socket went away: drop whatever still waits. */
  dispose(): void {
    this.#closed = true;
    this.#pending = [];
    this.#pendingBytes = 0;
  }
}
