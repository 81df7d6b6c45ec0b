/**
 * The client SDK against the real stack over loopback sockets: `ws` client class, the
 * `relaykit/ws` server, the Gateway and the Router.
 */
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { WsGatewayServer } from "../../src/adapters/ws/index.js";
import { type OutgoingStatus, RelayClient } from "../../src/client/index.js";
import { Gateway } from "../../src/gateway/index.js";
import type { MessageFrame } from "../../src/protocol/index.js";
import { Router } from "../../src/router/index.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startStack() {
  const router = new Router({ revealUnknownRecipients: true });
  const gateway = new Gateway({
    router,
    authenticate: (c: { token?: string | undefined }) => {
      const [userId, deviceId] = (c.token ?? "").split(":");
      return userId && deviceId ? { userId, deviceId } : undefined;
    },
  });
  const server = new WsGatewayServer({ gateway, port: 0, host: "127.0.0.1", keepaliveMs: 0 });
  await server.listening();
  cleanups.push(async () => {
    await server.close();
    await gateway.close();
    await router.close();
  });
  return { url: `${server.url()}/` };
}

function client(url: string, token: string) {
  const c = new RelayClient({
    url,
    token,
    userId: token.split(":")[0]!,
    WebSocket,
    reconnect: { initialDelay: 20, maxDelay: 100 },
    pingInterval: 0,
  });
  cleanups.push(() => c.close());
  return c;
}

function next<T>(register: (resolve: (v: T) => void) => void): Promise<T> {
  return new Promise(register);
}

describe("RelayClient over real sockets", () => {
  it("sends, receives, and sees sent, delivered and read", async () => {
    const { url } = await startStack();
    const alice = client(url, "alice:laptop");
    const bob = client(url, "bob:phone");
    const bobOpen = next<void>((r) => bob.once("open", r));
    const aliceOpen = next<void>((r) => alice.once("open", r));
    bob.connect();
    alice.connect();
    await Promise.all([bobOpen, aliceOpen]);

    const statuses: OutgoingStatus[] = [];
    const reached = (want: OutgoingStatus) =>
      next<void>((r) => alice.on("status", (s) => s.status === want && r()));
    alice.on("status", (s) => statuses.push(s.status));
    const delivered = reached("delivered");
    const read = reached("read");
    const got = next<MessageFrame>((r) => bob.once("message", r));
    alice.send("bob", "hello bob");
    const m = await got;
    expect(m).toMatchObject({ from: "alice", text: "hello bob", conversation: "dm:alice:bob" });
    await delivered;
    bob.markRead(m.conversation);
    await read;
    expect(statuses).toEqual(["sent", "delivered", "read"]);
  });

  it("stops at an unauthorized close and fails a send to an unknown user", async () => {
    const { url } = await startStack();
    const nobody = client(url, "no-device");
    const closed = next<{ code: number; reconnectIn: number | undefined }>((r) =>
      nobody.once("close", r),
    );
    nobody.connect();
    expect(await closed).toEqual({ code: 4401, reason: "unauthorized", reconnectIn: undefined });

    const alice = client(url, "alice:laptop");
    alice.connect();
    await next<void>((r) => alice.once("open", r));
    const failed = next<string | undefined>((r) =>
      alice.on("status", (s) => s.status === "failed" && r(s.reason)),
    );
    alice.send("ghost", "anyone?");
    expect(await failed).toBe("recipient_unknown");
  });
});
