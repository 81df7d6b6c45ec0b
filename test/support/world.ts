import { ManualClock } from "../../src/core/clock.js";
import { sequentialIds } from "../../src/core/random.js";
import { type Connection, Gateway, type LimitOptions } from "../../src/gateway/index.js";
import { Router, type RouterOptions } from "../../src/router/index.js";
import { FakeTransport } from "./fake-transport.js";

/** One node (router + gateway) with fake transports, under a manual clock. */
export function oneNode(
  opts: Partial<RouterOptions> = {},
  gatewayOpts: { slowConsumerMs?: number; maxBufferedBytes?: number } & LimitOptions = {},
) {
  const clock = new ManualClock(1_000_000);
  const router = new Router({ clock, ids: sequentialIds(), ...opts });
  const gateway = new Gateway<{ user: string; device: string }>({
    router,
    clock,
    ids: sequentialIds("g"),
    authenticate: (c) => ({ userId: c.user, deviceId: c.device }),
    ...gatewayOpts,
  });
  const flush = async () => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
  };
  async function connect(user: string, device = "d1") {
    const transport = new FakeTransport();
    const conn = (await gateway.open(transport, { user, device })) as Connection;
    const send = async (frame: unknown) => {
      await gateway.receive(conn, JSON.stringify(frame));
      await flush();
    };
    return { transport, conn, send };
  }
  return { clock, router, gateway, connect, flush };
}
