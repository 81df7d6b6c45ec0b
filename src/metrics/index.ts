/**
 * `relaykit/metrics`: Prometheus metrics for a node on `prom-client` (an optional peer
 * dependency: `npm install prom-client`).
 */
export * from "./relay-metrics.js";
