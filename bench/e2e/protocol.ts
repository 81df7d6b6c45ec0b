/** Messages between the e2e bench and its server processes (over the fork IPC channel). */

/** The servers the end-to-end benchmark compares. */
export type ServerKind = "relaykit" | "relaykit-demo" | "raw-ws" | "socketio" | "relaykit-redis";

/** What a server process reports when asked (`{ type: "stats", gc? }`). */
export interface ServerStats {
  type: "stats";
  /** process.cpuUsage() user + system, microseconds since the process started. */
  cpuUs: number;
  rss: number;
  heapUsed: number;
  /** Bytes written by every socket the server accepted (WebSocket frames and handshakes). */
  bytesWritten: number;
  /** The relaykit queue's `stats.deferred` (0 for the others). */
  deferred: number;
}
