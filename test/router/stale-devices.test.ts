import { expect, it } from "vitest";
import { type DeviceKey, deviceKey, type UserId } from "../../src/core/index.js";
import { Router } from "../../src/router/index.js";
import { oneNode } from "../support/world.js";

/** Advances the manual clock in hour steps (the sweep's default interval). */
async function days(w: ReturnType<typeof oneNode>, n: number) {
  for (let h = 0; h < n * 24; h++) {
    w.clock.advance(3_600_000);
    await w.flush();
  }
}

/** A device that connects, acks all it got, and closes. */
async function visit(w: ReturnType<typeof oneNode>, user: string, device: string) {
  const c = await w.connect(user, device);
  await w.flush();
  const ids = c.transport.ofType("message").map((m) => m.id);
  if (ids.length > 0) await c.send({ type: "receipt", status: "delivered", ids });
  await w.gateway.closed(c.conn);
  await w.flush();
  return c.transport.ofType("message").map((m) => m.text);
}

it("bob's phone, gone 30 days, is unlinked: alice hears failed for it (device_unlinked), bob's laptop gets everything, messages to bob stay accepted", async () => {
  const w = oneNode();
  const failed: [string, DeviceKey, string][] = [];
  w.router.on("failed", (env, device, reason) => failed.push([env.text ?? "", device, reason]));
  const alice = await w.connect("alice");
  await visit(w, "bob", "phone");
  await visit(w, "bob", "laptop");
  await days(w, 10);
  await alice.send({ type: "send", id: "c1", to: { user: "bob" }, text: "m1" });
  await days(w, 15);
  expect(await visit(w, "bob", "laptop")).toEqual(["m1"]);
  expect(failed).toEqual([]);
  // Day 30 plus one sweep: the phone is unlinked, its m1 failed for it alone.
  await days(w, 6);
  expect(failed).toEqual([["m1", deviceKey("bob" as UserId, "phone" as never), "device_unlinked"]]);
  const receipts = alice.transport.ofType("receipt").filter((r) => r.status === "failed");
  expect(receipts.map((r) => r.reason)).toEqual(["device_unlinked"]);
  expect(await w.router.devices.devices("bob" as UserId)).toEqual(["laptop"]);
  // New messages to bob are accepted and go to the laptop only.
  await alice.send({ type: "send", id: "c2", to: { user: "bob" }, text: "m2" });
  expect(alice.transport.ofType("error")).toEqual([]);
  expect(alice.transport.ofType("receipt").filter((r) => r.status === "sent")).toHaveLength(2);
  expect(await visit(w, "bob", "laptop")).toEqual(["m2"]);
  await w.router.close();
});

it("a device that reconnects within the limit is kept, and one with a live connection is never unlinked", async () => {
  const w = oneNode();
  await visit(w, "bob", "phone");
  const live = await w.connect("carol", "tablet");
  await w.flush();
  await days(w, 29);
  await visit(w, "bob", "phone");
  await days(w, 29);
  expect(await w.router.devices.devices("bob" as UserId)).toEqual(["phone"]);
  await days(w, 40);
  expect(await w.router.devices.devices("bob" as UserId)).toEqual([]);
  expect(await w.router.devices.devices("carol" as UserId)).toEqual(["tablet"]);
  expect(live.transport.closedWith).toBeUndefined();
  await w.router.close();
});

it("the options are validated at construction", () => {
  expect(() => new Router({ staleDevices: { idleMs: 0 } })).toThrow(
    expect.objectContaining({ code: "invalid_option" }),
  );
  expect(() => new Router({ staleDevices: { sweepMs: 1.5 } })).toThrow(
    expect.objectContaining({ code: "invalid_option" }),
  );
});
