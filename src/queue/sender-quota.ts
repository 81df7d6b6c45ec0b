import type { UserId } from "../core/ids.js";
import type { Envelope } from "../core/types.js";

/**
 * How much one sender may have waiting in one recipient device's queue: a flood is refused
 * to the flooder (`quota_exceeded`, retryable) and never to the device's other
 * correspondents, who keep room up to `maxPerDevice`.
 */
export interface SenderQuota {
  /** Most entries of one sender held for one device. @default 2000 */
  readonly count: number;
  /** Most bytes (UTF-16 code units of text, 256 per attachment reference) of one sender held for one device. @default 16 MiB */
  readonly bytes: number;
}

/** The defaults of {@link SenderQuota}. */
export const SENDER_QUOTA_DEFAULTS: SenderQuota = Object.freeze({
  count: 2000,
  bytes: 16 * 1024 * 1024,
});

/**
 * The quota is checked for devices holding at least this many entries: below it no default
 * quota can be reached (32 texts of the protocol's 16 KiB limit are 512 KiB), and the fan-out
 * path stays free of per-device work for devices that keep up.
 */
export const QUOTA_CHECK_ABOVE = 32;

/** What one sender has waiting for one device. */
export interface Usage {
  count: number;
  bytes: number;
}

/** The size an entry counts for against {@link SenderQuota.bytes}. */
export function envelopeBytes(envelope: Envelope): number {
  return (envelope.text?.length ?? 0) + 256 * (envelope.attachments?.length ?? 0);
}

/** Adds (`sign` 1) or removes (-1) one envelope from a per-sender tally. */
export function tally(usage: Map<UserId, Usage>, envelope: Envelope, sign: 1 | -1): void {
  const u = usage.get(envelope.from);
  if (u === undefined) {
    if (sign > 0) usage.set(envelope.from, { count: 1, bytes: envelopeBytes(envelope) });
    return;
  }
  u.count += sign;
  u.bytes += sign * envelopeBytes(envelope);
  if (u.count <= 0) usage.delete(envelope.from);
}

/** Whether one more `envelope` would take its sender over `quota`, given what it has waiting. */
export function overQuota(
  usage: Usage | undefined,
  envelope: Envelope,
  quota: SenderQuota,
): boolean {
  if (usage === undefined) return false;
  return usage.count + 1 > quota.count || usage.bytes + envelopeBytes(envelope) > quota.bytes;
}
