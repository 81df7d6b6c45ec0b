/**
 * The HTTP status for an error code. Unknown codes (an application's own refusal codes,
 * or codes added later) map to 500.
 */
export function httpStatusFor(code: string): number {
  return STATUS[code] ?? 500;
}

const STATUS: Readonly<Record<string, number>> = Object.freeze({
  bad_json: 400,
  invalid_field: 400,
  unknown_type: 400,
  unauthorized: 401,
  forbidden_sender: 403,
  not_group_member: 403,
  not_recipient: 403,
  not_group_admin: 403,
  recipient_unknown: 404,
  group_not_found: 404,
  unknown_message: 404,
  method_not_allowed: 405,
  duplicate: 409,
  group_full: 409,
  frame_too_large: 413,
  unsupported_media_type: 415,
  recipient_queue_full: 429,
  quota_exceeded: 429,
  rate_limited: 429,
  limit_exceeded: 429,
  overloaded: 503,
  store_unavailable: 503,
  timeout: 503,
});
