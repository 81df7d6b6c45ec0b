import { expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import type { UserId } from "../../src/core/ids.js";
import { sequentialIds } from "../../src/core/random.js";
import { type Connection, Gateway } from "../../src/gateway/index.js";
import { MemorySessionDirectory, Router } from "../../src/router/index.js";
import { FakeTransport } from "../support/fake-transport.js";

/** An in-process directory (answers at once) that throws while its backend is "down". */
class FlakyDirectory extends MemorySessionDirectory {
  down = false;
  override lookupMany(users: readonly UserId[]) {
    if (this.down) throw new Error("directory down");
    return super.lookupMany(users);
  }
}

it("a directory that throws synchronously on a retry's lookup is reported, not thrown out of a microtask", async () => {
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown) => uncaught.push(e);
  process.on("uncaughtException", onUncaught);
  try {
    const clock = new ManualClock(1_000_000);
    const directory = new FlakyDirectory();
    const router = new Router({ clock, ids: sequentialIds(), directory });
    const errors: unknown[] = [];
    router.on("error", (e) => errors.push(e));
    const gw = new Gateway<{ user: string }>({
      router,
      clock,
      ids: sequentialIds("g"),
      authenticate: (c) => ({ userId: c.user, deviceId: "d1" }),
    });
    const a = (await gw.open(new FakeTransport(), { user: "alice" })) as Connection;
    const bt = new FakeTransport();
    await gw.open(bt, { user: "bob" });
    await gw.receive(
      a,
      JSON.stringify({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" }),
    );
    expect(bt.ofType("message")).toHaveLength(1); // bob never acks: a retry comes
    directory.down = true;
    clock.advance(1_000); // the retry's transmit -> microtask flush -> lookupMany throws
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect(uncaught).toEqual([]);
    expect(errors.length).toBeGreaterThan(0);
  } finally {
    process.off("uncaughtException", onUncaught);
  }
});
