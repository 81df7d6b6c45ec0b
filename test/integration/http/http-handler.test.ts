import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createHttpHandler, type RequestCredentials } from "../../../src/adapters/http/index.js";
import { sequentialIds } from "../../../src/core/index.js";
import { type Connection, Gateway } from "../../../src/gateway/index.js";
import { Router } from "../../../src/router/index.js";
import { FakeTransport } from "../../support/fake-transport.js";

function auth(c: RequestCredentials) {
  if (!c.token || c.token === "nope") return undefined;
  const [userId, deviceId = "http"] = c.token.split(":");
  return userId ? { userId, deviceId } : undefined;
}

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function start(maxFrameBytes = 4096) {
  const router = new Router({ ids: sequentialIds("m"), revealUnknownRecipients: true });
  const gateway = new Gateway<{ user: string }>({
    router,
    ids: sequentialIds("s"),
    authenticate: (c) => ({ userId: c.user, deviceId: "d1" }),
  });
  const bob = new FakeTransport();
  const bobConn = (await gateway.open(bob, { user: "bob" })) as Connection;
  server = createServer(
    createHttpHandler({
      router,
      authenticate: auth,
      limits: { maxFrameBytes },
      ids: sequentialIds("h"),
    }),
  );
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  const post = (
    body: string | Buffer,
    headers: Record<string, string> = {},
    method = "POST",
  ): Promise<{ status: number; headers: Record<string, unknown>; json: unknown }> =>
    new Promise((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          method,
          path: "/frames",
          headers: {
            "content-type": "application/json",
            authorization: "Bearer alice:cli",
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString();
            resolve({
              status: res.statusCode!,
              headers: res.headers,
              json: text ? JSON.parse(text) : undefined,
            });
          });
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  return { router, gateway, bob, bobConn, port, post };
}

const flush = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

describe("relaykit/http", () => {
  it("accepts a send and answers with the sent receipt", async () => {
    const t = await start();
    const res = await t.post(
      JSON.stringify({ type: "send", id: "c1", to: { user: "bob" }, text: "over http" }),
    );
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({
      type: "receipt",
      status: "sent",
      clientId: "c1",
      seq: 1,
      conversation: "dm:alice:bob",
    });
    await flush();
    const [m] = t.bob.ofType("message");
    expect(m).toMatchObject({ from: "alice", fromDevice: "cli", text: "over http" });

    const again = await t.post(
      JSON.stringify({ type: "send", id: "c1", to: { user: "bob" }, text: "over http" }),
    );
    expect(again.json).toEqual(res.json);

    const ack = await t.post(
      JSON.stringify({ type: "receipt", status: "delivered", ids: [m!.id] }),
      {
        authorization: "Bearer bob:d1",
      },
    );
    expect(ack.status).toBe(204);
  });

  it("answers bad JSON with 400 and the error code", async () => {
    const t = await start();
    const res = await t.post("{oops");
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ type: "error", code: "bad_json" });
    const invalid = await t.post(JSON.stringify({ type: "send", id: "c1", to: { user: "bob" } }));
    expect(invalid.status).toBe(400);
    expect(invalid.json).toMatchObject({ code: "invalid_field", path: "text", ref: "c1" });
    const typing = await t.post(
      JSON.stringify({ type: "typing", to: { user: "bob" }, state: "composing" }),
    );
    expect(typing).toMatchObject({ status: 400, json: { code: "unknown_type" } });
  });

  it("maps refusals to status codes", async () => {
    const t = await start();
    const send = (extra: object) =>
      JSON.stringify({ type: "send", id: "c9", to: { user: "bob" }, text: "x", ...extra });
    expect(await t.post(send({ to: { user: "nobody" } }))).toMatchObject({
      status: 404,
      json: { code: "recipient_unknown" },
    });
    expect(await t.post(send({ from: "mallory" }))).toMatchObject({
      status: 403,
      json: { code: "forbidden_sender" },
    });
    expect(await t.post(send({}), {}, "PUT")).toMatchObject({
      status: 405,
      json: { code: "method_not_allowed" },
    });
    expect(await t.post(send({}), { "content-type": "text/plain" })).toMatchObject({
      status: 415,
      json: { code: "unsupported_media_type" },
    });
  });

  it("refuses wrong or missing credentials with 401", async () => {
    const t = await start();
    const body = JSON.stringify({ type: "send", id: "c1", to: { user: "bob" }, text: "x" });
    expect(await t.post(body, { authorization: "Bearer nope" })).toMatchObject({
      status: 401,
      json: { code: "unauthorized" },
    });
    expect(await t.post(body, { authorization: "Basic Zm9vOmJhcg==" })).toMatchObject({
      status: 401,
    });
    expect(await t.post(body, { authorization: "Bearer bad id!" })).toMatchObject({ status: 401 });
    await flush();
    expect(t.bob.frames).toEqual([]);
  });

  it("refuses an oversize body from Content-Length without reading it", async () => {
    const t = await start(1024);
    // Declare 10 MB and send none of it: the answer must come anyway.
    const socket = connect(t.port, "127.0.0.1");
    socket.write(
      "POST /frames HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
        "Authorization: Bearer alice\r\nContent-Length: 10000000\r\n\r\n{",
    );
    const text = await new Promise<string>((resolve, reject) => {
      let got = "";
      const timer = setTimeout(() => reject(new Error(`no answer: ${got}`)), 5000);
      socket.on("data", (d) => {
        got += d.toString();
      });
      socket.on("close", () => {
        clearTimeout(timer);
        resolve(got);
      });
    });
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text.toLowerCase()).toContain("connection: close");
    expect(text).toContain('"code":"frame_too_large"');
  });

  it("stops reading a chunked body once it passes the limit", async () => {
    const t = await start(1024);
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: t.port,
          method: "POST",
          path: "/",
          headers: {
            "content-type": "application/json",
            authorization: "Bearer alice",
            "transfer-encoding": "chunked",
          },
        },
        (r) => {
          let body = "";
          r.on("data", (c: Buffer) => {
            body += c.toString();
          });
          r.on("end", () => resolve({ status: r.statusCode!, body }));
        },
      );
      req.on("error", reject);
      req.write("x".repeat(800));
      req.write("x".repeat(800));
      // never ended: the server must answer without waiting for the rest
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ code: "frame_too_large" });
  });
});
