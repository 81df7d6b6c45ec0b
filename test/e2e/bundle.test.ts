/** The browser bundle of the client SDK served by the demo at `/client.js`. */
import { describe, expect, it } from "vitest";
import { bundleClient } from "../../examples/browser/bundle.js";
import { FakeSocket } from "../client/fake-socket.js";

describe("bundleClient", () => {
  it("builds one self-contained ES module with no Node built-ins", async () => {
    const code = await bundleClient();
    expect(code).not.toMatch(/from\s*["']node:|require\(["']/);
    expect(await bundleClient()).toBe(code);

    const mod = (await import(`data:text/javascript,${encodeURIComponent(code)}`)) as {
      RelayClient: typeof import("../../src/client/index.js").RelayClient;
    };
    FakeSocket.reset();
    const client = new mod.RelayClient({
      url: "ws://x/",
      token: "alice:web",
      userId: "alice",
      WebSocket: FakeSocket,
      pingInterval: 0,
    });
    client.connect();
    FakeSocket.last.serverOpen();
    const out = client.send("bob", "hi");
    expect(out.clientId).toMatch(/^c[0-9a-z]{16}$/);
    expect(FakeSocket.last.framesOf("send")).toHaveLength(1);
    // zod's English messages survive leaving its other locales out.
    const errors: string[] = [];
    client.on("error", (e) => errors.push(e.message));
    FakeSocket.last.serverSend({ type: "pong" });
    expect(errors).toEqual([expect.stringMatching(/^ts: .*expected number/)]);
    client.close();
  });
});
