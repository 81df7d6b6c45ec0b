import assert from "node:assert/strict";
import { type DeviceId, deviceId, userId } from "../../core/index.js";
import type { DeviceRegistry } from "../../router/index.js";
import type { ConformanceCase, PortFactory } from "./types.js";

const list = async (reg: DeviceRegistry, user: string): Promise<string[]> =>
  [...(await reg.devices(userId(user)))].map(String);

/**
 * The behaviour every {@link DeviceRegistry} must have. Run it against your own adapter:
 * `for (const c of deviceRegistryConformance(factory)) it(c.name, c.run)`.
 */
export function deviceRegistryConformance(factory: PortFactory<DeviceRegistry>): ConformanceCase[] {
  const with_ = (name: string, body: (reg: DeviceRegistry) => Promise<void>): ConformanceCase => ({
    name: `DeviceRegistry: ${name}`,
    async run() {
      const reg = await factory.create();
      try {
        await body(reg);
      } finally {
        await factory.dispose?.(reg);
      }
    },
  });

  return [
    with_("an unknown user has no devices", async (reg) => {
      assert.deepEqual(await list(reg, "nobody"), []);
    }),

    with_("devices come back in link order", async (reg) => {
      await reg.link(userId("alice"), deviceId("phone"));
      await reg.link(userId("alice"), deviceId("laptop"));
      await reg.link(userId("alice"), deviceId("tablet"));
      await reg.link(userId("bob"), deviceId("phone"));
      assert.deepEqual(await list(reg, "alice"), ["phone", "laptop", "tablet"]);
      assert.deepEqual(await list(reg, "bob"), ["phone"]);
    }),

    with_("linking again is a no-op: no duplicate, the position is kept", async (reg) => {
      await reg.link(userId("alice"), deviceId("phone"));
      await reg.link(userId("alice"), deviceId("laptop"));
      await reg.link(userId("alice"), deviceId("phone"));
      assert.deepEqual(await list(reg, "alice"), ["phone", "laptop"]);
    }),

    with_("unlink removes one device; unknown ones are a no-op", async (reg) => {
      await reg.link(userId("alice"), deviceId("phone"));
      await reg.link(userId("alice"), deviceId("laptop"));
      await reg.unlink(userId("alice"), deviceId("phone"));
      assert.deepEqual(await list(reg, "alice"), ["laptop"]);
      await reg.unlink(userId("alice"), deviceId("phone"));
      await reg.unlink(userId("alice"), deviceId("never"));
      await reg.unlink(userId("nobody"), deviceId("phone"));
      assert.deepEqual(await list(reg, "alice"), ["laptop"]);
      await reg.unlink(userId("alice"), deviceId("laptop"));
      assert.deepEqual(await list(reg, "alice"), []);
    }),

    with_("a device linked again after unlink goes to the end", async (reg) => {
      await reg.link(userId("alice"), deviceId("a"));
      await reg.link(userId("alice"), deviceId("b"));
      await reg.unlink(userId("alice"), deviceId("a"));
      await reg.link(userId("alice"), deviceId("a"));
      assert.deepEqual(await list(reg, "alice"), ["b", "a"]);
    }),

    with_("the same device id under two users is two links", async (reg) => {
      await reg.link(userId("alice"), deviceId("d1"));
      await reg.link(userId("bob"), deviceId("d1"));
      await reg.unlink(userId("alice"), deviceId("d1"));
      assert.deepEqual(await list(reg, "alice"), []);
      assert.deepEqual(await list(reg, "bob"), ["d1"]);
    }),

    with_("ids with colons, braces, spaces and unicode round-trip", async (reg) => {
      await reg.link(userId("user:{x}*?[a]"), deviceId("dev {1}:📱"));
      await reg.link(userId("user:{x}"), deviceId("plain"));
      assert.deepEqual(await list(reg, "user:{x}*?[a]"), ["dev {1}:📱"]);
      assert.deepEqual(await list(reg, "user:{x}"), ["plain"]);
    }),

    with_("concurrent links are all kept, once each", async (reg) => {
      const all: DeviceId[] = Array.from({ length: 40 }, (_, i) => deviceId(`d${i % 20}`));
      await Promise.all(all.map((d) => reg.link(userId("alice"), d)));
      const got = await list(reg, "alice");
      assert.equal(got.length, 20);
      assert.deepEqual([...got].sort(), Array.from({ length: 20 }, (_, i) => `d${i}`).sort());
    }),

    with_(
      "where offered, revision changes with every link or unlink that changes a list",
      async (reg) => {
        if (reg.revision === undefined) return;
        const seen = [reg.revision];
        const changed = () => {
          const r = reg.revision!;
          assert.ok(!seen.includes(r), `revision ${r} seen before`);
          seen.push(r);
        };
        const same = () => assert.equal(reg.revision, seen[seen.length - 1]);
        await reg.link(userId("alice"), deviceId("a"));
        changed();
        await reg.link(userId("alice"), deviceId("a"));
        same();
        await reg.link(userId("alice"), deviceId("b"));
        changed();
        await reg.unlink(userId("alice"), deviceId("nope"));
        same();
        await reg.unlink(userId("alice"), deviceId("a"));
        changed();
        await reg.unlink(userId("alice"), deviceId("b"));
        changed();
      },
    ),
  ];
}
