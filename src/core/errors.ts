/**
 * Every stable error code relaykit produces. Codes are part of the public contract: tests
 * assert them, clients branch on them, and they never change meaning.
 */
export const ERROR_CODES = [
  // protocol (the parser service)
  "frame_too_large",
  "bad_json",
  "unknown_type",
  "invalid_field",
  // authentication and authorisation at the gateway
  "unauthorized",
  "forbidden_sender",
  "not_group_member",
  "not_group_admin",
  "group_not_found",
  "group_full",
  "recipient_unknown",
  "rate_limited",
  "limit_exceeded",
  // delivery
  "recipient_queue_full",
  "quota_exceeded",
  "ttl_expired",
  "attempts_exhausted",
  "overloaded",
  "duplicate",
  "slow_consumer",
  // receipts and state machines
  "illegal_transition",
  "unknown_message",
  "not_recipient",
  // options and infrastructure
  "invalid_option",
  "store_unavailable",
  "timeout",
  "closed",
  "internal",
  "method_not_allowed",
  "unsupported_media_type",
] as const;

/** A stable string error code; see {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The one error class relaykit throws or reports; tell errors apart by `code`, not by message. */
export class RelayError extends Error {
  /** The stable code. */
  readonly code: ErrorCode;
  /** Where in the input the problem is (for `invalid_field`), as a dotted path. */
  readonly path: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; path?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.path = options?.path;
  }
}

/** True when `e` is a {@link RelayError}, optionally with the given code. */
export function isRelayError(e: unknown, code?: ErrorCode): e is RelayError {
  return e instanceof RelayError && (code === undefined || e.code === code);
}
