/** One event of a simulation trace: when it happened, what kind, and a short description. */
export interface TraceEvent {
  /** Virtual time (ms). */
  readonly t: number;
  /** What happened: `bus`, `link`, `client`, `node`, `fault`, `check`... */
  readonly kind: string;
  /** A short human-readable description. */
  readonly detail: string;
}

/**
 * A ring buffer of the last `capacity` events plus a running hash of every event ever
 * recorded: the hash tells two runs apart (same seed, same hash), the buffer tells a
 * person what happened just before a failure.
 * @remarks The hash is FNV-1a over each event's time, kind and detail; it is a fingerprint,
 * not a checksum against tampering.
 */
export class TraceBuffer {
  readonly #buf: (TraceEvent | undefined)[];
  #at = 0;
  #count = 0;
  #hash = 0x811c9dc5;

  /** @param capacity how many recent events to keep @default 200 */
  constructor(capacity = 200) {
    this.#buf = new Array<TraceEvent | undefined>(Math.max(1, capacity));
  }

  /** Records an event. */
  add(t: number, kind: string, detail: string): void {
    let h = this.#hash;
    h = Math.imul(h ^ (t | 0), 16777619);
    h = Math.imul(h ^ (((t * 1000) % 1000) | 0), 16777619);
    for (let i = 0; i < kind.length; i++) h = Math.imul(h ^ kind.charCodeAt(i), 16777619);
    for (let i = 0; i < detail.length; i++) h = Math.imul(h ^ detail.charCodeAt(i), 16777619);
    this.#hash = h >>> 0;
    this.#buf[this.#at] = { t, kind, detail };
    this.#at = (this.#at + 1) % this.#buf.length;
    this.#count++;
  }

  /** How many events were recorded in total (not only those kept). */
  get count(): number {
    return this.#count;
  }

  /** The fingerprint of every event recorded so far, as 8 hex digits. */
  get hash(): string {
    return this.#hash.toString(16).padStart(8, "0");
  }

  /** The kept events, oldest first. */
  events(): TraceEvent[] {
    const n = this.#buf.length;
    const out: TraceEvent[] = [];
    for (let i = 0; i < n; i++) {
      const e = this.#buf[(this.#at + i) % n];
      if (e) out.push(e);
    }
    return out;
  }

  /** The kept events as text, one per line: `[t=1234] bus n1->n2 drop message m3`. */
  format(last?: number): string {
    const events = this.events();
    const shown = last === undefined ? events : events.slice(Math.max(0, events.length - last));
    return shown.map((e) => `[t=${e.t}] ${e.kind} ${e.detail}`).join("\n");
  }
}
