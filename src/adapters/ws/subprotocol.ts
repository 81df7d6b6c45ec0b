/** The subprotocol a relaykit WebSocket speaks; the server answers with it when offered. */
export const RELAYKIT_SUBPROTOCOL = "relaykit.v1";

/** Prefix of the subprotocol that carries a token (browsers cannot set an `Authorization` header). */
export const TOKEN_SUBPROTOCOL_PREFIX = "token.";

/**
 * The subprotocol list a client offers to authenticate with `token`: `["relaykit.v1",
 * "token.<percent-encoded token>"]`. Percent-encoding keeps every token a valid
 * subprotocol name (`:` or `/` are not); tokens made of letters, digits, `-`, `_` and `.`
 * (JWTs, hex, base64url) pass unchanged.
 * @example new WebSocket(url, tokenSubprotocols("alice:phone"))
 */
export function tokenSubprotocols(token: string): string[] {
  return [RELAYKIT_SUBPROTOCOL, `${TOKEN_SUBPROTOCOL_PREFIX}${encodeSubprotocolToken(token)}`];
}

/** Percent-encodes a token so it is a valid subprotocol name (an RFC 7230 token). */
export function encodeSubprotocolToken(token: string): string {
  // encodeURIComponent leaves ( ) unescaped, which are not token characters.
  return encodeURIComponent(token).replace(
    /[()]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The token carried by a `token.<...>` subprotocol among those offered, if any. */
export function subprotocolToken(protocols: Iterable<string>): string | undefined {
  for (const p of protocols) {
    if (!p.startsWith(TOKEN_SUBPROTOCOL_PREFIX)) continue;
    const raw = p.slice(TOKEN_SUBPROTOCOL_PREFIX.length);
    if (raw.length === 0) continue;
    try {
      return decodeURIComponent(raw);
    } catch {
      return raw;
    }
  }
  return undefined;
}

/** Parses a `Sec-WebSocket-Protocol` header value into the offered subprotocols. */
export function offeredSubprotocols(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  const joined = Array.isArray(header) ? header.join(",") : header;
  return joined
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
