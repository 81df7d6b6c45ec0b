import type { ClientMessageId, ConversationId, DeviceKey, MessageId, UserId } from "../core/ids.js";

/** One broken invariant, with enough detail to find it in the trace. */
export interface Violation {
  /** Which invariant: `no-loss`, `no-duplicates`, `fifo`, `receipts-monotonic`, `presence`, `bounded-state`. */
  readonly invariant: string;
  readonly message: string;
}

/** A message its sender saw accepted (`sent`), with the devices it was addressed to. */
export interface SentMessage {
  readonly id: MessageId;
  readonly clientId: ClientMessageId;
  readonly from: UserId;
  /** The sending device. */
  readonly sender: DeviceKey;
  /** Every device that must get it: the recipient's devices and the sender's other devices. */
  readonly recipients: readonly DeviceKey[];
}

/** What one device's client saw, in arrival order. The input of most checkers. */
export interface DeviceView {
  readonly device: DeviceKey;
  /** Connected at the end of the run: only such devices are owed every message. */
  readonly online: boolean;
  /** New messages after the client's dedupe, in arrival order. */
  readonly received: readonly {
    readonly id: MessageId;
    readonly from: UserId;
    readonly conversation: ConversationId;
    readonly seq: number;
  }[];
  /** Receipt frames it got, in arrival order. */
  readonly receipts: readonly {
    readonly status: "sent" | "delivered" | "read" | "failed";
    readonly ids: readonly string[];
    readonly by?: string | undefined;
    readonly device?: string | undefined;
  }[];
}

function views(devices: Iterable<DeviceView>): Map<DeviceKey, DeviceView> {
  const m = new Map<DeviceKey, DeviceView>();
  for (const d of devices) m.set(d.device, d);
  return m;
}

/**
 * No loss: every message that got `sent` reached every recipient device that is online at the
 * end, or its sending device got a `failed` receipt for it.
 */
export function checkNoLoss(
  messages: Iterable<SentMessage>,
  devices: Iterable<DeviceView>,
): Violation[] {
  const byDevice = views(devices);
  const got = new Map<DeviceKey, Set<string>>();
  for (const d of byDevice.values()) got.set(d.device, new Set(d.received.map((r) => r.id)));
  const failedAt = new Map<DeviceKey, Set<string>>();
  for (const d of byDevice.values()) {
    const s = new Set<string>();
    for (const r of d.receipts) if (r.status === "failed") for (const id of r.ids) s.add(id);
    failedAt.set(d.device, s);
  }
  const out: Violation[] = [];
  for (const m of messages) {
    if (failedAt.get(m.sender)?.has(m.id)) continue;
    for (const r of m.recipients) {
      const view = byDevice.get(r);
      if (!view?.online) continue;
      if (!got.get(r)?.has(m.id)) {
        out.push({
          invariant: "no-loss",
          message: `message ${m.id} (${m.clientId}) from ${m.sender} never reached ${r} and no failed receipt`,
        });
      }
    }
  }
  return out;
}

/** No duplicates: after its dedupe, no client application saw a message id twice. */
export function checkNoDuplicates(devices: Iterable<DeviceView>): Violation[] {
  const out: Violation[] = [];
  for (const d of devices) {
    const seen = new Set<string>();
    for (const r of d.received) {
      if (seen.has(r.id))
        out.push({ invariant: "no-duplicates", message: `${d.device} saw ${r.id} twice` });
      seen.add(r.id);
    }
  }
  return out;
}

/**
 * FIFO per (sender, recipient device): within a conversation, the messages of one sender
 * arrive at a device in increasing `seq`.
 */
export function checkFifo(devices: Iterable<DeviceView>): Violation[] {
  const out: Violation[] = [];
  for (const d of devices) {
    const last = new Map<string, number>();
    for (const r of d.received) {
      const k = `${r.conversation}\u0000${r.from}`;
      const prev = last.get(k) ?? 0;
      if (r.seq <= prev) {
        out.push({
          invariant: "fifo",
          message: `${d.device} got ${r.id} (${r.conversation} seq ${r.seq}) from ${r.from} after seq ${prev}`,
        });
      }
      if (r.seq > prev) last.set(k, r.seq);
    }
  }
  return out;
}

const RANK = { delivered: 1, read: 2 } as const;

/**
 * Receipts never go backwards at the sender: for each (message, recipient device) a device
 * never gets `delivered` after `read`, and never gets `failed` for a message after every
 * recipient user had it on one device (`delivered` or `read` by any of its devices: the
 * user-level status is the maximum over devices, Signal's MessageSendState). Give `messages`
 * to check the latter.
 */
export function checkReceiptsMonotonic(
  devices: Iterable<DeviceView>,
  messages: Iterable<SentMessage> = [],
): Violation[] {
  // The recipient users of each message (the sender's own other devices are copies, not recipients).
  const recipients = new Map<string, ReadonlySet<string>>();
  for (const m of messages) {
    const users = new Set<string>();
    for (const k of m.recipients) {
      const u = k.slice(0, k.indexOf("/"));
      if (u !== m.from) users.add(u);
    }
    recipients.set(m.id, users);
  }
  const out: Violation[] = [];
  for (const d of devices) {
    const rank = new Map<string, number>();
    const reached = new Map<string, Set<string>>();
    for (const r of d.receipts) {
      if (r.status === "delivered" || r.status === "read") {
        const who = `${r.by ?? "?"}/${r.device ?? "?"}`;
        for (const id of r.ids) {
          const k = `${id}\u0000${who}`;
          const prev = rank.get(k) ?? 0;
          if (RANK[r.status] < prev) {
            out.push({
              invariant: "receipts-monotonic",
              message: `${d.device} got ${r.status} for ${id} by ${who} after read`,
            });
          } else rank.set(k, RANK[r.status]);
          let s = reached.get(id);
          if (!s) {
            s = new Set();
            reached.set(id, s);
          }
          s.add(r.by ?? "?");
        }
      } else if (r.status === "failed") {
        for (const id of r.ids) {
          const need = recipients.get(id);
          const s = reached.get(id);
          if (need && need.size > 0 && s && [...need].every((u) => s.has(u))) {
            out.push({
              invariant: "receipts-monotonic",
              message: `${d.device} got failed for ${id} after every recipient user had it on a device`,
            });
          }
        }
      }
    }
  }
  return out;
}

/** What presence a viewer last saw of a subject, and the truth after quiet. */
export interface PresenceObservation {
  readonly viewer: DeviceKey;
  readonly subject: UserId;
  /** The last status the viewer received, or `undefined` if it never got one. */
  readonly seen: "online" | "offline" | undefined;
}

/**
 * Presence converges: after quiet, every viewer's last observed status of each subject it
 * subscribed to equals the truth (online iff some device of the subject is connected).
 * @remarks Input contract: one observation per (viewer device, subscribed subject) and a
 * `truth` predicate; a viewer that never got a frame for an online subject is a violation,
 * one that never got a frame for an offline subject is not (nothing changed to tell).
 */
export function checkPresence(
  observations: Iterable<PresenceObservation>,
  truth: (subject: UserId) => boolean,
): Violation[] {
  const out: Violation[] = [];
  for (const o of observations) {
    const online = truth(o.subject);
    const seen = o.seen ?? "offline";
    if ((seen === "online") !== online) {
      out.push({
        invariant: "presence",
        message: `${o.viewer} sees ${o.subject} ${o.seen ?? "nothing"} but it is ${online ? "online" : "offline"}`,
      });
    }
  }
  return out;
}

/**
 * No unbounded growth: after quiet with every device connected and every message acked,
 * each named size (queue depth, stored entries, in-flight packets...) is at most its limit
 * (0 unless `limits` says otherwise).
 */
export function checkBounded(
  sizes: Readonly<Record<string, number>>,
  limits: Readonly<Record<string, number>> = {},
): Violation[] {
  const out: Violation[] = [];
  for (const [name, size] of Object.entries(sizes)) {
    const limit = limits[name] ?? 0;
    if (size > limit) {
      out.push({
        invariant: "bounded-state",
        message: `${name} is ${size} after quiet (limit ${limit})`,
      });
    }
  }
  return out;
}
