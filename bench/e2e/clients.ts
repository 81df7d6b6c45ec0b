/**
 * Load-side clients of the e2e benchmark, one per server kind, behind one small interface.
 * Kept cheap so the load process is not the bottleneck: relaykit clients are raw `ws` sockets
 * speaking relaykit's JSON protocol (acks batched per turn, as the client SDK does), raw ws
 * clients speak the raw relay's short JSON, Socket.IO clients use socket.io-client (WebSocket
 * transport only). Every message carries a client id unique in the load process.
 */
import { WebSocket } from "ws";
import type { ServerKind } from "./protocol.js";

/** Message priority lanes (relaykit honours them; the others ignore them). */
export type Lane = "high" | "normal" | "low";

/** What a load client reports; `cid` is the sender's client id of the message. */
export interface ClientEvents {
  /** The server accepted `cid` (relaykit `sent` receipt, the others' `sent` answer). */
  sent(user: string, cid: string): void;
  /** The partner's delivered receipt for `cid` reached the sender. */
  delivered(user: string, cid: string): void;
  /** `user` received the message `cid` (acked by the client itself). */
  message(user: string, cid: string): void;
}

/** One connected load client. */
export interface LoadClient {
  readonly user: string;
  send(to: string, cid: string, text: string, lane?: Lane): void;
  close(): void;
}

/** Connects `user` to a server of `kind` on `port`; events go to `events()` at the time. */
export function connectClient(
  kind: ServerKind,
  port: number,
  user: string,
  events: () => ClientEvents,
): Promise<LoadClient> {
  if (kind === "socketio") return socketIoClient(port, user, events);
  if (kind === "raw-ws") return rawWsClient(port, user, events);
  return relaykitClient(port, user, events);
}

function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
}

/** relaykit's wire protocol over a raw `ws` socket. */
async function relaykitClient(
  port: number,
  user: string,
  events: () => ClientEvents,
): Promise<LoadClient> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, ["relaykit.v1"], {
    headers: { authorization: `Bearer ${user}:d1` },
    perMessageDeflate: false,
  });
  ws.on("error", () => {});
  await opened(ws);
  // The server's message id -> the client id, from the `sent` receipt.
  const byServerId = new Map<string, string>();
  // Delivered receipts that came before their `sent` (counted by the caller as sent-after-delivered).
  const early = new Set<string>();
  let acks: string[] = [];
  const flushAcks = () => {
    const ids = acks;
    acks = [];
    if (ws.readyState === WebSocket.OPEN)
      ws.send(`{"type":"receipt","status":"delivered","ids":${JSON.stringify(ids)}}`);
  };
  ws.on("message", (raw) => {
    const f = JSON.parse(String(raw)) as {
      type: string;
      status?: string;
      id?: string;
      clientId?: string;
      ids?: string[];
    };
    const ev = events();
    if (f.type === "message" && f.id && f.clientId) {
      if (acks.length === 0) setImmediate(flushAcks);
      acks.push(f.id);
      ev.message(user, f.clientId);
    } else if (f.type === "receipt" && f.status === "sent" && f.id && f.clientId) {
      // A ✓✓ that came first is reported first, so the caller sees the order it arrived in.
      if (early.delete(f.id)) ev.delivered(user, f.clientId);
      else byServerId.set(f.id, f.clientId);
      ev.sent(user, f.clientId);
    } else if (f.type === "receipt" && f.status === "delivered" && f.ids) {
      for (const id of f.ids) {
        const cid = byServerId.get(id);
        if (cid === undefined) {
          early.add(id);
          continue;
        }
        byServerId.delete(id);
        ev.delivered(user, cid);
      }
    }
  });
  return {
    user,
    send(to, cid, text, lane) {
      const p = lane === undefined ? "" : `,"priority":"${lane}"`;
      ws.send(
        `{"type":"send","id":"${cid}","to":{"user":"${to}"},"text":${JSON.stringify(text)}${p}}`,
      );
    },
    close: () => ws.terminate(),
  };
}

/** The raw ws relay's protocol (see `rawWs` in server.ts). */
async function rawWsClient(
  port: number,
  user: string,
  events: () => ClientEvents,
): Promise<LoadClient> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/?user=${user}`, { perMessageDeflate: false });
  ws.on("error", () => {});
  await opened(ws);
  ws.on("message", (raw) => {
    const f = JSON.parse(String(raw)) as { t: string; id: string; from?: string };
    const ev = events();
    if (f.t === "msg") {
      ws.send(`{"t":"ack","id":"${f.id}","from":"${f.from}"}`);
      ev.message(user, f.id);
    } else if (f.t === "sent") ev.sent(user, f.id);
    else if (f.t === "delivered") ev.delivered(user, f.id);
  });
  return {
    user,
    send(to, cid, text) {
      ws.send(`{"t":"send","id":"${cid}","to":"${to}","text":${JSON.stringify(text)}}`);
    },
    close: () => ws.terminate(),
  };
}

/** socket.io-client, WebSocket transport only, no reconnection. */
async function socketIoClient(
  port: number,
  user: string,
  events: () => ClientEvents,
): Promise<LoadClient> {
  const { io } = await import("socket.io-client");
  const socket = io(`http://127.0.0.1:${port}`, {
    transports: ["websocket"],
    auth: { user },
    reconnection: false,
    forceNew: true,
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("connect_error", reject);
  });
  socket.on("msg", (m: { id: string; from: string }) => {
    socket.emit("ack", { id: m.id, from: m.from });
    events().message(user, m.id);
  });
  socket.on("sent", (id: string) => events().sent(user, id));
  socket.on("delivered", (m: { id: string }) => events().delivered(user, m.id));
  return {
    user,
    send(to, cid, text) {
      socket.emit("send", { id: cid, to, text });
    },
    close: () => socket.disconnect(),
  };
}
