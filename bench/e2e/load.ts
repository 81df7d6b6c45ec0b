/**
 * The e2e load: users in pairs (user 2k talks to 2k+1 and back), a closed loop (each user
 * keeps `window` messages in flight; the next goes when one's ✓✓ is in) or an open loop (a
 * fixed offered rate whatever the server does), latency from send to ✓✓ in an HDR histogram.
 */
import * as hdr from "hdr-histogram-js";
import { type ClientEvents, connectClient, type Lane, type LoadClient } from "./clients.js";
import type { ServerKind } from "./protocol.js";

const TEXT = "hello, this is a benchmark message of a typical chat length";
let nextCid = 0;
/** A client id unique in this process (relaykit's id pattern allows it). */
const cid = () => `c${(nextCid++).toString(36)}`;

/** A histogram of microseconds (1 us to 10 min, 3 significant digits). */
export const histogram = () =>
  hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });

/** Users of one server, connected, with their event sink switchable per run. */
export class UserSet {
  clients: LoadClient[] = [];
  events: ClientEvents = { sent() {}, delivered() {}, message() {} };
  /** `port` may depend on the user's index (users spread over several nodes). */
  constructor(
    readonly kind: ServerKind,
    readonly port: number | ((i: number) => number),
    readonly prefix: string,
  ) {}

  /** Connects `n` users (`<prefix>0` ...), `parallel` handshakes at a time. */
  async connect(n: number, parallel = 100): Promise<void> {
    for (let i = this.clients.length; i < n; i += parallel) {
      const batch: Promise<LoadClient>[] = [];
      for (let j = i; j < Math.min(n, i + parallel); j++)
        batch.push(
          connectClient(
            this.kind,
            typeof this.port === "number" ? this.port : this.port(j),
            `${this.prefix}${j}`,
            () => this.events,
          ),
        );
      this.clients.push(...(await Promise.all(batch)));
    }
  }

  close(): void {
    for (const c of this.clients) c.close();
    this.clients = [];
  }

  /** The partner of user index `i`. */
  partner(i: number): string {
    return `${this.prefix}${i ^ 1}`;
  }
}

/** What a run measured on the load side. */
export interface LoadResult {
  completed: number;
  elapsedMs: number;
  /** Send to ✓✓, microseconds (all lanes). */
  latency: hdr.Histogram;
  /** Send to ✓✓ of high-lane messages (open loop only). */
  high: hdr.Histogram;
  duplicates: number;
  sentAfterDelivered: number;
  /** Accepted (`sent`) but never received by the partner by the end of the run. */
  lost: number;
  /** Sent but never accepted. */
  unaccepted: number;
}

interface InFlight {
  t0: number;
  from: number;
  sent: boolean;
  delivered: boolean;
  received: number;
  done: boolean;
  lane: Lane | undefined;
}

/** Bookkeeping shared by both loops. */
class Tracker {
  readonly flights = new Map<string, InFlight>();
  readonly latency = histogram();
  readonly high = histogram();
  duplicates = 0;
  sentAfterDelivered = 0;
  completed = 0;
  onDone: (f: InFlight) => void = () => {};

  send(set: UserSet, i: number, lane?: Lane): void {
    const id = cid();
    this.flights.set(id, {
      t0: performance.now(),
      from: i,
      sent: false,
      delivered: false,
      received: 0,
      done: false,
      lane,
    });
    set.clients[i]?.send(set.partner(i), id, TEXT, lane);
  }

  readonly events: ClientEvents = {
    sent: (_user, id) => {
      const f = this.flights.get(id);
      if (!f || f.done) return;
      if (f.delivered) this.sentAfterDelivered++;
      f.sent = true;
      this.#check(f);
    },
    delivered: (_user, id) => {
      const f = this.flights.get(id);
      if (!f || f.done || f.delivered) return;
      f.delivered = true;
      this.#check(f);
    },
    message: (_user, id) => {
      const f = this.flights.get(id);
      if (!f) return;
      f.received++;
      if (f.received > 1) this.duplicates++;
      this.#check(f);
    },
  };

  #check(f: InFlight): void {
    if (f.done || !(f.sent && f.delivered && f.received > 0)) return;
    const us = Math.max(1, Math.round((performance.now() - f.t0) * 1000));
    this.latency.recordValue(us);
    if (f.lane === "high") this.high.recordValue(us);
    this.completed++;
    f.done = true; // kept: a late duplicate is still counted
    this.onDone(f);
  }

  result(elapsedMs: number): LoadResult {
    let lost = 0;
    let unaccepted = 0;
    for (const f of this.flights.values()) {
      if (f.done) continue;
      if (f.sent && f.received === 0) lost++;
      else if (!f.sent) unaccepted++;
    }
    return {
      completed: this.completed,
      elapsedMs,
      latency: this.latency,
      high: this.high,
      duplicates: this.duplicates,
      sentAfterDelivered: this.sentAfterDelivered,
      lost,
      unaccepted,
    };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Closed loop for `durationMs`: every user keeps `window` messages in flight to its partner.
 * After the deadline no new message goes and the run waits (up to `drainMs`) for the rest.
 */
export async function closedLoop(
  set: UserSet,
  window: number,
  durationMs: number,
  drainMs = 10_000,
): Promise<LoadResult> {
  const t = new Tracker();
  set.events = t.events;
  let running = true;
  let inFlight = 0;
  t.onDone = (f) => {
    inFlight--;
    if (running) {
      inFlight++;
      t.send(set, f.from);
    }
  };
  const t0 = performance.now();
  for (let w = 0; w < window; w++)
    for (let i = 0; i < set.clients.length; i++) {
      inFlight++;
      t.send(set, i);
    }
  await sleep(durationMs);
  running = false;
  const until = performance.now() + drainMs;
  while (inFlight > 0 && performance.now() < until) await sleep(5);
  const elapsed = performance.now() - t0;
  set.events = { sent() {}, delivered() {}, message() {} };
  return t.result(elapsed);
}

/**
 * Open loop: offers `rate` messages/s spread over the users for `durationMs`, one in four in
 * the high lane, one in four low, the rest normal; then waits (up to `drainMs`) for every
 * message to complete.
 */
export async function openLoop(
  set: UserSet,
  rate: number,
  durationMs: number,
  drainMs = 20_000,
): Promise<LoadResult & { offered: number }> {
  const t = new Tracker();
  set.events = t.events;
  let issued = 0;
  const lanes: Lane[] = ["high", "normal", "low", "normal"];
  const t0 = performance.now();
  const timer = setInterval(() => {
    const due = Math.min(
      Math.floor((rate * (performance.now() - t0)) / 1000),
      Math.floor((rate * durationMs) / 1000),
    );
    for (; issued < due; issued++) t.send(set, issued % set.clients.length, lanes[issued % 4]);
  }, 2);
  await sleep(durationMs);
  clearInterval(timer);
  const until = performance.now() + drainMs;
  while (t.completed < issued && performance.now() < until) await sleep(10);
  await sleep(200); // late duplicates
  const elapsed = performance.now() - t0;
  set.events = { sent() {}, delivered() {}, message() {} };
  return { ...t.result(elapsed), offered: issued };
}
