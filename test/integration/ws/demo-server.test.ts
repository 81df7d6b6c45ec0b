import { spawn } from "node:child_process";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { type DemoServer, startServer } from "../../../examples/single-node/app.js";
import { tokenSubprotocols } from "../../../src/adapters/ws/index.js";
import type { MessageFrame, ServerFrame } from "../../../src/protocol/index.js";
import { TestClient } from "./ws-helpers.js";

let app: DemoServer | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.terminate();
  await app?.close();
  app = undefined;
});

async function open(url: string, token: string | undefined, protocols?: string[]) {
  const c = TestClient.open(url, token, protocols ? { protocols } : {});
  clients.push(c);
  await c.opened;
  return c;
}

const is =
  (type: string, extra: Record<string, unknown> = {}) =>
  (f: ServerFrame) =>
    f.type === type &&
    Object.entries(extra).every(([k, v]) => (f as Record<string, unknown>)[k] === v);

describe("examples/single-node", () => {
  it("listens on 127.0.0.1 unless told otherwise", async () => {
    app = await startServer({ port: 0 });
    expect((app.server.address() as AddressInfo).address).toBe("127.0.0.1");
    expect(app.host).toBe("127.0.0.1");
  });

  it("npm run demo listens on 127.0.0.1 with no HOST set, and says so", async () => {
    const root = fileURLToPath(new URL("../../../", import.meta.url));
    const { HOST: _, ...env } = process.env;
    const child = spawn(process.execPath, ["--import", "tsx", "examples/single-node/server.ts"], {
      cwd: root,
      env: { ...env, PORT: "0" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      let out = "";
      const line = await new Promise<string>((resolve, reject) => {
        child.stdout.on("data", (chunk: Buffer) => {
          out += chunk.toString();
          const m = /listening on (\S+)/.exec(out);
          if (m && out.includes("\n")) resolve(out.split("\n")[0]!);
        });
        child.once("exit", (code) => reject(new Error(`demo exited (${code}): ${out}`)));
      });
      expect(line).toMatch(/listening on 127\.0\.0\.1:\d+ \(this machine only/);
    } finally {
      child.kill("SIGTERM");
    }
  }, 20_000);

  it("starts on port 0 and lets two ws clients chat through it", async () => {
    app = await startServer({ port: 0, host: "127.0.0.1" });
    expect(app.port).toBeGreaterThan(0);
    const alice = await open(app.wsUrl, "alice:phone");
    const bob = await open(app.wsUrl, undefined, tokenSubprotocols("bob:web"));

    // bob says hello first, so alice is a known recipient too
    bob.send({ type: "ping", id: "p" });
    await bob.waitFor(is("pong"));
    alice.send({ type: "send", id: "a1", to: { user: "bob" }, text: "hello bob" });
    await alice.waitFor(is("receipt", { status: "sent", clientId: "a1" }), "sent");
    const m = await bob.waitFor<MessageFrame>(is("message", { clientId: "a1" }), "message");
    expect(m).toMatchObject({ from: "alice", fromDevice: "phone", text: "hello bob" });
    bob.send({ type: "receipt", status: "read", ids: [m.id] });
    await alice.waitFor(is("receipt", { status: "read", by: "bob" }), "read");

    bob.send({ type: "send", id: "b1", to: { user: "alice" }, text: "hi alice" });
    expect(await alice.waitFor(is("message", { clientId: "b1" }))).toMatchObject({
      from: "bob",
      text: "hi alice",
    });
  });

  it("serves the HTTP frame endpoint and refuses anonymous sockets", async () => {
    app = await startServer({ port: 0, host: "127.0.0.1" });
    const bob = await open(app.wsUrl, "bob");
    const res = await fetch(`${app.httpUrl}/api/frames`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer carol" },
      body: JSON.stringify({ type: "send", id: "h1", to: { user: "bob" }, text: "via http" }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ type: "receipt", status: "sent", clientId: "h1" });
    expect(await bob.waitFor(is("message", { clientId: "h1" }))).toMatchObject({ from: "carol" });

    const anonymous = await open(app.wsUrl, undefined);
    expect((await anonymous.closed).code).toBe(4401);
    expect((await fetch(`${app.httpUrl}/healthz`)).status).toBe(200);
  });
});
