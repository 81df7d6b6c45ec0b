import { expect, it } from "vitest";
import type { DeviceKey, UserId } from "../../src/core/ids.js";
import { MemorySessionDirectory } from "../../src/router/index.js";
import { oneNode } from "../support/world.js";

/** An in-process directory (answers at once) that throws while its backend is "down". */
class FlakyDirectory extends MemorySessionDirectory {
  down = false;
  override lookupMany(users: readonly UserId[]) {
    if (this.down) throw new Error("directory down");
    return super.lookupMany(users);
  }
  override lookupDeviceSync(device: DeviceKey) {
    if (this.down) throw new Error("directory down");
    return super.lookupDeviceSync(device);
  }
}

it.each([
  ["answers per device (looked up at the flush)", true],
  ["answers per user only (looked up for the retry)", false],
])(
  "a directory that throws synchronously on a retry's lookup is reported, not thrown out of a microtask: %s",
  async (_, perDevice) => {
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on("uncaughtException", onUncaught);
    try {
      const directory = new FlakyDirectory();
      // Hidden, the router falls back to a per-user lookup for transmissions with no route.
      if (!perDevice) Object.defineProperty(directory, "lookupDeviceSync", { value: undefined });
      const { router, connect } = oneNode({ directory });
      const errors: unknown[] = [];
      router.on("error", (e) => errors.push(e));
      const alice = await connect("alice");
      const bob = await connect("bob");
      await alice.send({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" });
      // Bob never acks: the message is redelivered when bob comes back on a new connection.
      expect(bob.transport.ofType("message")).toHaveLength(1);
      directory.down = true;
      // The redelivery's transmit -> microtask flush -> lookupMany throws.
      await connect("bob").catch(() => undefined);
      for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
      expect(uncaught).toEqual([]);
      expect(errors.length).toBeGreaterThan(0);
    } finally {
      process.off("uncaughtException", onUncaught);
    }
  },
);
