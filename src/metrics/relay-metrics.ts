import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Clock } from "../core/clock.js";
import { RelayError } from "../core/errors.js";
import { systemClock } from "../core/system.js";
import type { Gateway, Transport } from "../gateway/gateway.js";
import type { PresenceTracker } from "../presence/presence-tracker.js";
import { schemas } from "../protocol/schemas.js";
import type { QueueStats } from "../queue/delivery-queue.js";
import type { Router } from "../router/router.js";

/** Options of {@link relayMetrics}. */
export interface RelayMetricsOptions {
  /** The router whose messages and outbox are counted. */
  readonly router: Router;
  /** Gateways whose connections and frames are counted (wrapped at once, before connections). */
  readonly gateways?: readonly Gateway<never>[];
  /** The presence tracker whose users are counted. */
  readonly presence?: PresenceTracker;
  /** Where the metrics are registered. @default a new Registry */
  readonly registry?: Registry;
  /** Prefix of every metric name. @default "relaykit_" */
  readonly prefix?: string;
  /** Histogram buckets, in seconds. @default [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30] */
  readonly buckets?: readonly number[];
  /** Most transmissions awaiting their ✓✓ kept for the latency histogram (oldest dropped). @default 10000 */
  readonly maxTracked?: number;
  /** The clock latencies are measured on (the router's). @default systemClock */
  readonly clock?: Clock;
}

/** What {@link relayMetrics} returns. */
export interface RelayMetrics {
  /** The registry holding relaykit's metrics. */
  readonly registry: Registry;
  /** The `content-type` of {@link RelayMetrics.metrics}'s text. */
  readonly contentType: string;
  /** The Prometheus text exposition of the registry (what `/metrics` serves). */
  metrics(): Promise<string>;
  /** Stops counting: unwraps the gateways and removes the router listeners. */
  close(): void;
}

type Outbox = Router["outbox"] & { readonly stats?: QueueStats };

const TYPE = /"type":"([a-z_.]+)"/;
const CLIENT_TYPES: ReadonlySet<string> = new Set(Object.keys(schemas.client));

/** The frame type of an encoded frame, without parsing it all (`type` comes first). */
function typeOf(data: string): string {
  const m = TYPE.exec(data.slice(0, 64));
  return m ? m[1]! : "unknown";
}

function text(raw: unknown): string | undefined {
  if (typeof raw === "string") return raw;
  if (raw instanceof Uint8Array)
    return Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString();
  if (Array.isArray(raw)) return Buffer.concat(raw as Uint8Array[]).toString();
  if (raw instanceof ArrayBuffer) return Buffer.from(raw).toString();
  return undefined;
}

/**
 * Prometheus metrics (on `prom-client`) for one node: connections, frames in and out by
 * type, messages accepted / delivered / retried / failed, outbox depth, receipts by status,
 * tracked presence, and two latency histograms: accept to first delivery to a device, and
 * that delivery to the device's ✓✓ (its `delivered` receipt).
 * @remarks It attaches no listener to the outbox (a `delivered` listener turns the queue's
 * roster fast path off): outbox counts are read from its `stats` at scrape time, and frames
 * are counted where the gateways read and write them (their `open` and `receive` are wrapped).
 * @example
 * const metrics = relayMetrics({ router, gateways: [gateway], presence });
 * // in your HTTP server: res.setHeader("content-type", metrics.contentType); res.end(await metrics.metrics());
 * @throws RelayError `invalid_option` on bad options
 */
export function relayMetrics(options: RelayMetricsOptions): RelayMetrics {
  const bad = (name: string, expected: string, value: unknown): never => {
    throw new RelayError(
      "invalid_option",
      `relayMetrics: Expected \`${name}\` to be ${expected}, got \`${String(value)}\` (${typeof value})`,
      { path: name },
    );
  };
  if (!options || typeof options !== "object") bad("options", "an object", options);
  const { router, presence } = options;
  if (!router || typeof router.on !== "function") bad("router", "a Router", router);
  const gateways = options.gateways ?? [];
  if (!Array.isArray(gateways)) bad("gateways", "an array of Gateways", gateways);
  const prefix = options.prefix ?? "relaykit_";
  if (typeof prefix !== "string" || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$|^$/.test(prefix)) {
    bad("prefix", "a metric name prefix", prefix);
  }
  const maxTracked = options.maxTracked ?? 10_000;
  if (!Number.isInteger(maxTracked) || maxTracked < 1)
    bad("maxTracked", "an integer >= 1", maxTracked);
  const clock = options.clock ?? systemClock;
  const registry = options.registry ?? new Registry();
  const registers = [registry];
  const buckets = [...(options.buckets ?? [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30])];
  const outbox = router.outbox as Outbox;

  new Gauge({
    name: `${prefix}connections`,
    help: "Connections open on this node's gateways.",
    registers,
    collect() {
      this.set(gateways.reduce((n, g) => n + g.size, 0));
    },
  });
  const framesIn = new Counter({
    name: `${prefix}frames_in_total`,
    help: "Frames received from clients, by type.",
    labelNames: ["type"],
    registers,
  });
  const framesOut = new Counter({
    name: `${prefix}frames_out_total`,
    help: "Frames written to clients, by type.",
    labelNames: ["type"],
    registers,
  });
  const receipts = new Counter({
    name: `${prefix}receipts_in_total`,
    help: "Receipts received from clients, by status (delivered, read).",
    labelNames: ["status"],
    registers,
  });
  const accepted = new Counter({
    name: `${prefix}messages_accepted_total`,
    help: "Messages accepted (given their sent tick) by this node's router.",
    registers,
  });
  const onAccepted = () => accepted.inc();
  router.on("accepted", onAccepted);

  // Outbox counters read from its stats at scrape time (monotonic: add what grew).
  const fromStats: [keyof QueueStats, string, string][] = [
    ["enqueued", "outbox_enqueued_total", "Outbox entries enqueued (one per recipient device)."],
    ["delivered", "messages_delivered_total", "Outbox entries acked by their device."],
    ["retried", "messages_retried_total", "Retransmissions of unacked entries."],
    ["failed", "messages_failed_total", "Entries given up (the sender got failed)."],
    ["expired", "messages_expired_total", "Entries given up on their TTL."],
  ];
  for (const [key, name, help] of fromStats) {
    let seen = 0;
    new Counter({
      name: `${prefix}${name}`,
      help,
      registers,
      collect() {
        const now = outbox.stats?.[key] ?? 0;
        if (now > seen) this.inc(now - seen);
        seen = Math.max(seen, now);
      },
    });
  }
  for (const [key, name, help] of [
    ["depth", "queue_depth", "Outbox entries held now."],
    ["backlog", "queue_backlog", "Entries of connected devices in flight or ready."],
    ["devices", "queue_devices", "Devices with outbox state held now."],
  ] as const) {
    new Gauge({
      name: `${prefix}${name}`,
      help,
      registers,
      collect() {
        this.set(outbox.stats?.[key] ?? 0);
      },
    });
  }
  new Gauge({
    name: `${prefix}presence_users`,
    help: "Users tracked by presence.",
    registers,
    collect() {
      this.set(presence?.size ?? 0);
    },
  });
  const toDelivery = new Histogram({
    name: `${prefix}accept_to_delivery_seconds`,
    help: "From a message's acceptance to its first transmission to each device.",
    buckets,
    registers,
  });
  const toAck = new Histogram({
    name: `${prefix}delivery_to_ack_seconds`,
    help: "From a message's first transmission to a device to that device's delivered receipt.",
    buckets,
    registers,
  });

  // First transmission time per (connection, message), until the device acks it. Keyed by
  // our transport wrapper's number: frames written while `open` runs have no session yet.
  const inFlight = new Map<string, number>();
  const wrapperIds = new WeakMap<Transport, number>();
  let nextWrapper = 0;
  const transmitted = (session: string, data: string) => {
    let frame: { id?: unknown; ts?: unknown };
    try {
      frame = JSON.parse(data) as typeof frame;
    } catch {
      return;
    }
    if (typeof frame.id !== "string") return;
    const key = `${session}\n${frame.id}`;
    if (inFlight.has(key)) return;
    const now = clock.now();
    if (typeof frame.ts === "number") toDelivery.observe(Math.max(0, now - frame.ts) / 1000);
    if (inFlight.size >= maxTracked) inFlight.delete(inFlight.keys().next().value!);
    inFlight.set(key, now);
  };
  const received = (transport: Transport, raw: unknown) => {
    const session = String(wrapperIds.get(transport) ?? -1);
    const data = text(raw);
    let frame: { type?: unknown; status?: unknown; ids?: unknown };
    try {
      frame = (data === undefined ? raw : JSON.parse(data)) as typeof frame;
    } catch {
      framesIn.inc({ type: "unknown" });
      return;
    }
    const type = typeof frame?.type === "string" ? frame.type : "unknown";
    // Only the protocol's own types become labels (a client cannot invent series).
    framesIn.inc({ type: CLIENT_TYPES.has(type) ? type : "unknown" });
    if (type !== "receipt" || (frame.status !== "delivered" && frame.status !== "read")) return;
    receipts.inc({ status: frame.status });
    if (!Array.isArray(frame.ids)) return;
    const now = clock.now();
    for (const id of frame.ids) {
      const key = `${session}\n${String(id)}`;
      const at = inFlight.get(key);
      if (at === undefined) continue;
      inFlight.delete(key);
      toAck.observe(Math.max(0, now - at) / 1000);
    }
  };

  const restore: (() => void)[] = [];
  for (const gateway of gateways) {
    const g = gateway as unknown as Gateway<unknown>;
    const open = g.open;
    const receive = g.receive;
    g.open = (transport, credentials) => {
      const session = String(nextWrapper++);
      const counted: Transport = {
        send(data) {
          const type = typeOf(data);
          framesOut.inc({ type });
          if (type === "message") transmitted(session, data);
          transport.send(data);
        },
        close: (code, reason) => transport.close(code, reason),
        get bufferedAmount() {
          return transport.bufferedAmount;
        },
      };
      wrapperIds.set(counted, Number(session));
      return open.call(g, counted, credentials);
    };
    g.receive = (connection, raw) => {
      received(connection.transport, raw);
      return receive.call(g, connection, raw);
    };
    restore.push(() => {
      Reflect.deleteProperty(g, "open");
      Reflect.deleteProperty(g, "receive");
    });
  }

  return {
    registry,
    contentType: registry.contentType,
    metrics: () => registry.metrics(),
    close() {
      router.off("accepted", onAccepted);
      for (const r of restore.splice(0)) r();
      inFlight.clear();
    },
  };
}
