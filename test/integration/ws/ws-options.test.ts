import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import {
  createWsGateway,
  encodeSubprotocolToken,
  offeredSubprotocols,
  type RequestCredentials,
  subprotocolToken,
  tokenSubprotocols,
  type WsGatewayServer,
} from "../../../src/adapters/ws/index.js";
import { isRelayError } from "../../../src/core/index.js";
import { Gateway } from "../../../src/gateway/index.js";
import { Router } from "../../../src/router/index.js";
import { once, TestClient, tokenAuth } from "./ws-helpers.js";

const TOKEN_CHARS = /^[!#$%&'*+\-.0-9A-Z^_`|a-z~]+$/;

describe("relaykit/ws: subprotocol tokens", () => {
  it("round-trips any token through a valid subprotocol name", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 64, unit: "grapheme" }), (token) => {
        const [proto, carrier] = tokenSubprotocols(token);
        expect(proto).toBe("relaykit.v1");
        expect(carrier).toMatch(TOKEN_CHARS);
        expect(subprotocolToken(offeredSubprotocols(`relaykit.v1, ${carrier}`))).toBe(token);
      }),
      { numRuns: 200 },
    );
  });

  it("leaves JWT-like tokens unchanged", () => {
    expect(encodeSubprotocolToken("eyJhbGciOi.J9-_x")).toBe("eyJhbGciOi.J9-_x");
    expect(subprotocolToken(["relaykit.v1"])).toBeUndefined();
  });
});

describe("relaykit/ws: options", () => {
  const gateway = () =>
    new Gateway<RequestCredentials>({ router: new Router(), authenticate: tokenAuth });

  it("throws invalid_option on bad options", () => {
    const bad = [
      {},
      { port: -1 },
      { port: 0, server: createServer() },
      { port: 0, keepaliveMs: 1.5 },
      { port: 0, path: "ws" },
      { port: 0, tokenFrom: "cookie" },
    ];
    for (const extra of bad) {
      let thrown: unknown;
      try {
        createWsGateway({ gateway: gateway(), ...extra } as never);
      } catch (e) {
        thrown = e;
      }
      expect(isRelayError(thrown, "invalid_option"), JSON.stringify(extra)).toBe(true);
    }
  });
});

describe("relaykit/ws: attached to an existing http.Server", () => {
  let server: Server | undefined;
  let ws: WsGatewayServer | undefined;
  afterEach(async () => {
    await ws?.close();
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  });

  it("takes upgrades on its path and leaves plain HTTP alone", async () => {
    server = createServer((_req, res) => res.end("plain http"));
    const router = new Router();
    ws = createWsGateway({
      gateway: new Gateway<RequestCredentials>({ router, authenticate: tokenAuth }),
      server,
      path: "/ws",
      tokenFrom: "header",
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
    const { port } = server.address() as AddressInfo;
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe("plain http");

    const alice = TestClient.open(`ws://127.0.0.1:${port}/ws?x=1`, "alice");
    await alice.opened;
    alice.send({ type: "ping", id: "p" });
    await alice.waitFor((f) => f.type === "pong");

    const elsewhere = new WebSocket(`ws://127.0.0.1:${port}/other`, {
      headers: { authorization: "Bearer alice" },
    });
    elsewhere.on("error", () => {});
    const [, res] = await once<[unknown, { statusCode: number }]>(elsewhere, "unexpected-response");
    expect(res.statusCode).toBe(404);
    elsewhere.terminate();

    // tokenFrom "header": a subprotocol token is ignored
    const viaProto = TestClient.open(`ws://127.0.0.1:${port}/ws`, undefined, {
      protocols: tokenSubprotocols("bob"),
    });
    expect((await viaProto.closed).code).toBe(4401);
  });
});
