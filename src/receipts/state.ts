/**
 * The receipt state machine of one (message, recipient device): a pure function over plain
 * strings, so it can be tested exhaustively and property-tested.
 */

/** The states of one (message, recipient device), in order: `accepted < sent < delivered < read`, plus `failed`. */
export type ReceiptState = "accepted" | "sent" | "delivered" | "read" | "failed";

/** Every {@link ReceiptState}, the ordered ones first. */
export const RECEIPT_STATES: readonly ReceiptState[] = Object.freeze([
  "accepted",
  "sent",
  "delivered",
  "read",
  "failed",
]);

/** What can happen to a (message, device): it reaches a state. Same names as the states. */
export type ReceiptEvent = ReceiptState;

/** The result of {@link transition}: the new state and whether it moved, or a typed error. */
export type TransitionResult =
  | { readonly state: ReceiptState; readonly changed: boolean; readonly error?: undefined }
  | {
      readonly error: "illegal_transition";
      readonly state?: undefined;
      readonly changed?: undefined;
    };

/**
 * Position in the order `accepted < sent < delivered < read`. `failed` sits beside `sent`:
 * it is reachable only from `accepted` or `sent`, and left only upwards, for a late
 * `delivered` or `read` (late `accepted`/`sent` duplicates are ignored).
 */
const RANK: Readonly<Record<ReceiptState, number>> = {
  accepted: 0,
  sent: 1,
  failed: 1,
  delivered: 2,
  read: 3,
};

/** The rank of a state in the order `accepted(0) < sent(1) < delivered(2) < read(3)`; `failed` ranks as `sent`. */
export function receiptRank(state: ReceiptState): number {
  return RANK[state];
}

const ILLEGAL: TransitionResult = Object.freeze({ error: "illegal_transition" as const });

function compute(state: ReceiptState, event: ReceiptEvent): TransitionResult {
  if (state === "failed") {
    // A device the queue gave up on may still have it (its ack was late or lost): a later
    // delivered/read moves it up (Signal's MessageSendState); a late accepted/sent is a duplicate.
    if (event === "delivered" || event === "read") return { state: event, changed: true };
    return { state, changed: false };
  }
  if (event === "failed") {
    if (state === "delivered" || state === "read") return ILLEGAL;
    return { state: "failed", changed: true };
  }
  // Max-merge: duplicates and late or out-of-order events never move backwards, and
  // `read` before `delivered` lands on `read` (which implies delivered).
  return RANK[event] > RANK[state] ? { state: event, changed: true } : { state, changed: false };
}

// Every (state, event) result, precomputed and frozen, so `transition` never allocates.
const TABLE = new Map<string, TransitionResult>();
for (const s of RECEIPT_STATES) {
  for (const e of RECEIPT_STATES) TABLE.set(`${s}>${e}`, Object.freeze(compute(s, e)));
}
const INDEX: Readonly<Record<ReceiptState, number>> = {
  accepted: 0,
  sent: 1,
  delivered: 2,
  read: 3,
  failed: 4,
};
const FLAT: TransitionResult[] = [];
for (const s of RECEIPT_STATES) {
  for (const e of RECEIPT_STATES) FLAT[INDEX[s] * 5 + INDEX[e]] = TABLE.get(`${s}>${e}`)!;
}

/**
 * Applies one event to one (message, device) state as a max-merge. Never throws: an event
 * that cannot happen (`failed` after `delivered` or `read`) returns
 * `{ error: "illegal_transition" }` and the caller keeps the old state.
 * @example transition("sent", "read") // { state: "read", changed: true }
 * @example transition("read", "delivered") // { state: "read", changed: false }
 */
export function transition(state: ReceiptState, event: ReceiptEvent): TransitionResult {
  const r = FLAT[INDEX[state] * 5 + INDEX[event]];
  // Unknown strings (bad data from a store) are illegal rather than a crash.
  return r ?? ILLEGAL;
}

/** True when `s` is a {@link ReceiptState}. */
export function isReceiptState(s: unknown): s is ReceiptState {
  return typeof s === "string" && Object.hasOwn(INDEX, s);
}
