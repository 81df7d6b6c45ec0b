/**
 * Keeps the e2e benchmark harness (bench/e2e/) from rotting: its relaykit and raw ws servers
 * start as child processes, relay a few closed-loop messages from real WebSocket clients with
 * every ✓ and ✓✓, report CPU and bytes written, and exit when stopped.
 */
import { afterEach, describe, expect, it } from "vitest";
import { closedLoop, UserSet } from "../../../bench/e2e/load.js";
import type { ServerKind } from "../../../bench/e2e/protocol.js";
import { type ServerProcess, startServer } from "../../../bench/e2e/servers.js";

const started: ServerProcess[] = [];
const sets: UserSet[] = [];
afterEach(async () => {
  for (const s of sets.splice(0)) s.close();
  for (const s of started.splice(0)) await s.stop();
});

describe("e2e bench servers", () => {
  it.each<ServerKind>(["relaykit", "raw-ws"])(
    "%s relays closed-loop messages with both ticks",
    async (kind) => {
      const srv = await startServer(kind);
      started.push(srv);
      const set = new UserSet(kind, srv.port, "t");
      sets.push(set);
      await set.connect(4);
      const before = await srv.stats();
      const res = await closedLoop(set, 2, 150, 5_000);
      const after = await srv.stats();
      // 4 users x window 2: at least the first 8 messages complete (sent, received, ✓✓).
      expect(res.completed).toBeGreaterThanOrEqual(8);
      expect(res.duplicates).toBe(0);
      expect(res.lost + res.unaccepted).toBe(0);
      expect(res.latency.totalCount).toBe(res.completed);
      expect(after.cpuUs).toBeGreaterThan(before.cpuUs);
      // Every relayed message writes at least its accept answer, the delivery and the receipt.
      expect(after.bytesWritten - before.bytesWritten).toBeGreaterThan(res.completed * 40);
      await srv.stop();
      await expect(srv.stats()).rejects.toThrow();
    },
  );
});
