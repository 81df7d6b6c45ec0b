import { afterEach, describe, expect, it } from "vitest";
import { CLOSE_CODES, DEFAULT_CONNECTION_RATES } from "../../../src/index.js";
import { startWsNode, withTimeout } from "./ws-helpers.js";

type Node = Awaited<ReturnType<typeof startWsNode>>;
let node: Node | undefined;
afterEach(async () => {
  await node?.stop();
  node = undefined;
});

describe("ws rate limits (defaults)", () => {
  it("a flooding connection gets rate_limited with a retry-after, then is closed with 4429; another pair keeps working", async () => {
    node = await startWsNode();
    const flooder = await node.connect("flooder:d1");
    const a = await node.connect("alice:d1");
    const b = await node.connect("bob:d1");
    await node.connect("victim:d1");
    const started = Date.now();
    for (let i = 0; i < 3000; i++) {
      flooder.send({ type: "send", id: `f${i}`, to: { user: "victim" }, text: "spam" });
    }
    const closed = await withTimeout(flooder.closed, 10_000, "the flooder closed");
    const seconds = (Date.now() - started) / 1000;
    expect(closed).toEqual({ code: CLOSE_CODES.flooding, reason: "flooding" });
    const limited = flooder.ofType("error").filter((e) => e.code === "rate_limited");
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.retryAfterMs).toBeGreaterThan(0);
    // The default burst was accepted, plus what the default rate refilled meanwhile.
    const { burst, perSecond } = DEFAULT_CONNECTION_RATES.send;
    const sent = flooder.ofType("receipt").filter((r) => r.status === "sent");
    expect(sent.length).toBeGreaterThanOrEqual(burst);
    expect(sent.length).toBeLessThanOrEqual(burst + Math.ceil(perSecond * seconds));
    a.send({ type: "send", id: "hello", to: { user: "bob" }, text: "still here" });
    await b.waitFor((f) => f.type === "message" && f.text === "still here", "pair message");
    await a.waitFor((f) => f.type === "receipt" && f.status === "sent", "sent tick");
  }, 20_000);
});
