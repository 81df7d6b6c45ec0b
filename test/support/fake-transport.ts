import type { Transport } from "../../src/gateway/index.js";
import type { ServerFrame } from "../../src/protocol/index.js";

/** An in-memory transport that records what the gateway writes. */
export class FakeTransport implements Transport {
  readonly frames: ServerFrame[] = [];
  closedWith: { code: number; reason: string } | undefined;
  bufferedAmount = 0;

  send(data: string): void {
    this.frames.push(JSON.parse(data) as ServerFrame);
  }

  close(code: number, reason: string): void {
    this.closedWith = { code, reason };
  }

  /** Frames of one type, optionally narrowed by a predicate. */
  ofType<T extends ServerFrame["type"]>(type: T): Extract<ServerFrame, { type: T }>[] {
    return this.frames.filter((f): f is Extract<ServerFrame, { type: T }> => f.type === type);
  }

  clear(): void {
    this.frames.length = 0;
  }
}
