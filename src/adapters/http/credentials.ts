import type { IncomingHttpHeaders, IncomingMessage } from "node:http";

/**
 * What the HTTP and WebSocket adapters hand to the gateway's `authenticate` hook: one shape
 * for both, so a single hook serves both transports.
 * @remarks The adapters only extract the token; deciding who it belongs to (and whether it
 * is valid) is the hook's job. They never log it.
 */
export interface RequestCredentials {
  /**
   * The bearer token: from `Authorization: Bearer <token>`, or for WebSockets from a
   * `token.<percent-encoded token>` subprotocol. `undefined` when none was offered.
   */
  readonly token: string | undefined;
  /** The request headers (cookies, custom auth headers, `x-forwarded-for`...). */
  readonly headers: IncomingHttpHeaders;
  /** The raw request (URL, remote address). For WebSockets, the upgrade request. */
  readonly request: IncomingMessage;
  /** Which adapter the request came through. */
  readonly transport: "ws" | "http";
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** The token of an `Authorization: Bearer <token>` header, if there is one. */
export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const value = headers.authorization;
  if (typeof value !== "string") return undefined;
  const m = BEARER.exec(value);
  return m ? m[1] : undefined;
}
