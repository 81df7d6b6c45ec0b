import type { DeviceKey } from "../core/index.js";

/**
 * How a fan-out's recipient list relates to a roster's list (both distinct devices, in the
 * router's order): the same; the roster's list without one device (a group's devices but the
 * sender's: `skip` is that device's index in the roster); or the roster's list with one device
 * added and another gone (another member sent: `union` is the roster's list with the added
 * one put in place, of which the recipients are the list without the one gone).
 * @internal shared by the delivery queue and the memory queue store
 */
export type RosterMatch =
  | { readonly kind: "same" }
  | { readonly kind: "skip"; readonly skip: number }
  | { readonly kind: "union"; readonly keys: readonly DeviceKey[]; readonly skip: number }
  | undefined;

const SAME: RosterMatch = Object.freeze({ kind: "same" });

/**
 * Compares `recipients` with a roster's `keys` in one pass (see {@link RosterMatch}), or
 * `undefined` when they differ by more.
 * @internal
 */
export function matchRoster(
  keys: readonly DeviceKey[],
  recipients: readonly DeviceKey[],
): RosterMatch {
  const m = keys.length;
  const n = recipients.length;
  let i = 0;
  while (i < n && i < m && keys[i] === recipients[i]) i++;
  if (m === n) return i === n ? SAME : union(keys, recipients, i);
  if (m === n + 1) {
    // The roster's device at i is not a recipient; the rest must follow it.
    for (let k = i; k < n; k++) if (keys[k + 1] !== recipients[k]) return undefined;
    return { kind: "skip", skip: i };
  }
  return undefined;
}

/**
 * Lists of equal length that first differ at `i`: one device added and one gone, in either
 * order. The union keeps both in place, or `undefined` when they differ by more.
 */
function union(
  keys: readonly DeviceKey[],
  recipients: readonly DeviceKey[],
  i: number,
): RosterMatch {
  const n = keys.length;
  // recipients[i] is new and keys[g] (g >= i) is gone: recipients = keys[..i) + new +
  // keys[i..g) + keys[g+1..).
  let g = i;
  while (g < n - 1 && keys[g] === recipients[g + 1]) g++;
  if (tailEquals(keys, recipients, g + 1)) {
    return {
      kind: "union",
      keys: [...keys.slice(0, i), recipients[i]!, ...keys.slice(i)],
      skip: g + 1,
    };
  }
  // keys[i] is gone and recipients[a] (a >= i) is new: recipients = keys[..i) + keys[i+1..a+1)
  // + new + keys[a+1..).
  let a = i;
  while (a < n - 1 && keys[a + 1] === recipients[a]) a++;
  if (tailEquals(keys, recipients, a + 1)) {
    return {
      kind: "union",
      keys: [...keys.slice(0, a + 1), recipients[a]!, ...keys.slice(a + 1)],
      skip: i,
    };
  }
  return undefined;
}

/** Whether `keys` and `recipients` agree from index `from` on. */
function tailEquals(
  keys: readonly DeviceKey[],
  recipients: readonly DeviceKey[],
  from: number,
): boolean {
  for (let k = from; k < keys.length; k++) if (keys[k] !== recipients[k]) return false;
  return true;
}
