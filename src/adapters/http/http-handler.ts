import type { IncomingMessage, ServerResponse } from "node:http";
import type { DeviceId, SessionId, UserId } from "../../core/index.js";
import { type IdSource, isRelayError, RelayError, systemIds } from "../../core/index.js";
import type { Authenticate, Identity } from "../../gateway/index.js";
import {
  type ErrorFrame,
  FrameParser,
  type ProtocolLimits,
  type ServerFrame,
} from "../../protocol/index.js";
import { errorFrame, type Router, type Sender } from "../../router/index.js";
import { bearerToken, type RequestCredentials } from "./credentials.js";
import { httpStatusFor } from "./status.js";

/** Options of {@link createHttpHandler}. */
export interface HttpHandlerOptions {
  /** The router frames go to. */
  readonly router: Router;
  /** The same hook as the gateway's: decides who the request is from its headers. */
  readonly authenticate: Authenticate<RequestCredentials>;
  /** Parser limits; `maxFrameBytes` also bounds the request body. */
  readonly limits?: Partial<ProtocolLimits>;
  /** Source of the per-request session ids (`http:<id>`). @default systemIds() */
  readonly ids?: IdSource;
  /** Unexpected failures (answered with 500 or 503) are reported here. */
  readonly onError?: (error: RelayError) => void;
}

/** A `node:http` request handler: `(req, res) => void`. */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse) => void;

type Body = { ok: true; bytes: Uint8Array } | { ok: false; tooLarge: boolean };

/**
 * The HTTP face of the parser service: a `node:http` handler (usable in any Node server or
 * framework that hands out `req`/`res`) that takes the same `send` and `receipt` frames as
 * WebSockets, as JSON POST bodies, authenticated by the same hook.
 *
 * Answers: 200 with the `sent` receipt for a `send`; 204 for an accepted `receipt`; the
 * `error` frame as JSON otherwise, with a fitting status (400 bad input, 401, 403, 404,
 * 405 non-POST, 413 body over `maxFrameBytes`, 415 non-JSON, 429, 503, 500).
 * Oversize bodies are refused from `Content-Length` before any byte is read, and reading
 * stops as soon as a body without one passes the limit: never more than `maxFrameBytes`
 * is buffered. Refused requests are answered with `Connection: close`.
 * @example http.createServer(createHttpHandler({ router, authenticate })).listen(8080)
 */
export function createHttpHandler(options: HttpHandlerOptions): HttpHandler {
  if (!options || typeof options.authenticate !== "function") {
    throw new RelayError("invalid_option", "HttpHandler: Expected `authenticate` to be a function");
  }
  if (!options.router || typeof options.router.send !== "function") {
    throw new RelayError("invalid_option", "HttpHandler: Expected `router` to be a Router");
  }
  const { router, authenticate } = options;
  const parser = new FrameParser(options.limits);
  const max = parser.limits.maxFrameBytes;
  const ids = options.ids ?? systemIds();
  const report = options.onError ?? (() => {});

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "POST") {
      refuse(req, res, errorFrame("method_not_allowed", "only POST is accepted"), {
        allow: "POST",
      });
      return;
    }
    if (!isJson(req.headers["content-type"])) {
      refuse(req, res, errorFrame("unsupported_media_type", "the body must be application/json"));
      return;
    }
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > max) {
      refuse(req, res, errorFrame("frame_too_large", `body exceeds ${max} bytes`));
      return;
    }
    const identity = await identify(req);
    if (!identity) {
      refuse(req, res, errorFrame("unauthorized", "authentication failed"), {
        "www-authenticate": "Bearer",
      });
      return;
    }
    const body = await readBody(req, max);
    if (!body.ok) {
      if (body.tooLarge)
        refuse(req, res, errorFrame("frame_too_large", `body exceeds ${max} bytes`));
      else if (!res.headersSent) req.socket?.destroy();
      return;
    }
    const parsed = parser.parseClient(body.bytes);
    if (!parsed.ok) {
      reply(res, parsed.error.toFrame());
      return;
    }
    const frame = parsed.frame;
    const sender: Sender = {
      userId: identity.userId as UserId,
      deviceId: identity.deviceId as DeviceId,
      sessionId: `http:${ids.next()}` as SessionId,
    };
    let answer: ServerFrame | undefined;
    switch (frame.type) {
      case "send":
        answer = await router.send(sender, frame);
        break;
      case "receipt":
        answer = await router.receipt(sender, frame);
        break;
      default:
        answer = errorFrame(
          "unknown_type",
          `\`${frame.type}\` frames are only accepted over WebSockets`,
          undefined,
          "type",
        );
    }
    if (answer === undefined) {
      res.writeHead(204, { "cache-control": "no-store" });
      res.end();
    } else {
      reply(res, answer);
    }
  }

  async function identify(req: IncomingMessage): Promise<Identity | undefined> {
    let identity: Identity | undefined;
    try {
      identity = await authenticate({
        token: bearerToken(req.headers),
        headers: req.headers,
        request: req,
        transport: "http",
      });
    } catch {
      return undefined;
    }
    const id = parser.limits.idPattern;
    if (!identity || !id.test(identity.userId) || !id.test(identity.deviceId)) return undefined;
    return identity;
  }

  return (req, res) => {
    handle(req, res).catch((cause: unknown) => {
      const err = isRelayError(cause)
        ? cause
        : new RelayError("internal", "unexpected failure while handling a request", { cause });
      report(err);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const code =
        err.code === "store_unavailable" || err.code === "timeout" ? err.code : "internal";
      reply(res, errorFrame(code, code === "internal" ? "internal error" : err.message));
    });
  };
}

function isJson(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const mime = contentType.split(";", 1)[0]!.trim().toLowerCase();
  return mime === "application/json" || (mime.startsWith("application/") && mime.endsWith("+json"));
}

function reply(
  res: ServerResponse,
  frame: ServerFrame,
  headers: Record<string, string> = {},
): void {
  const status = frame.type === "error" ? httpStatusFor(frame.code) : 200;
  const body = JSON.stringify(frame);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(body);
}

/**
 * Answers without (fully) reading the body. `Connection: close` makes node end the socket
 * once the answer is written instead of draining the rest of the body for keep-alive.
 */
function refuse(
  req: IncomingMessage,
  res: ServerResponse,
  frame: ErrorFrame,
  headers: Record<string, string> = {},
): void {
  if (!req.complete) headers = { ...headers, connection: "close" };
  reply(res, frame, headers);
}

/** Reads the body up to `max` bytes; stops reading the moment it is passed. */
function readBody(req: IncomingMessage, max: number): Promise<Body> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        cleanup();
        req.pause();
        chunks.length = 0;
        resolve({ ok: false, tooLarge: true });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve({ ok: true, bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    };
    const onError = () => {
      cleanup();
      resolve({ ok: false, tooLarge: false });
    };
    const onClose = () => {
      if (!req.complete) onError();
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}
