import type { z } from "zod";
import { RelayError } from "../core/errors.js";
import {
  buildSchemas,
  type ClientFrame,
  DEFAULT_LIMITS,
  type ErrorFrame,
  type ProtocolLimits,
  type ServerFrame,
} from "./schemas.js";

/** The codes the parser produces. */
export type ProtocolErrorCode = "frame_too_large" | "bad_json" | "unknown_type" | "invalid_field";

/** A frame the parser refused, with a stable code and, for `invalid_field`, the field path. */
export class ProtocolError extends RelayError {
  declare readonly code: ProtocolErrorCode;
  /** The frame's own `id` when one could be read, so the client can match the error. */
  readonly ref: string | undefined;

  constructor(code: ProtocolErrorCode, message: string, opts?: { path?: string; ref?: string }) {
    super(code, message, opts?.path === undefined ? undefined : { path: opts.path });
    this.ref = opts?.ref;
  }

  /** The `error` frame to send back to the client. */
  toFrame(): ErrorFrame {
    const frame: { -readonly [K in keyof ErrorFrame]: ErrorFrame[K] } = {
      type: "error",
      code: this.code,
      message: this.message,
    };
    if (this.path !== undefined) frame.path = this.path;
    if (this.ref !== undefined) frame.ref = this.ref;
    return frame;
  }
}

/** What {@link parseFrame} returns: never an exception. */
export type ParseResult<T> =
  | { readonly ok: true; readonly frame: T }
  | { readonly ok: false; readonly error: ProtocolError };

/** Raw input the parser accepts: a WebSocket text or binary payload, or an already-decoded JSON body. */
export type RawFrame = string | Uint8Array | ArrayBuffer | readonly Uint8Array[] | object;

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The parser service: turns raw frames into validated, typed frames. One instance per set
 * of limits; parsing never throws and never has side effects.
 */
export class FrameParser {
  /** The limits in force. */
  readonly limits: ProtocolLimits;
  readonly #schemas: ReturnType<typeof buildSchemas>;
  readonly #clientTypes: ReadonlyMap<string, z.ZodType>;
  readonly #serverTypes: ReadonlyMap<string, z.ZodType>;

  constructor(limits: Partial<ProtocolLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.#schemas = buildSchemas(this.limits);
    this.#clientTypes = new Map(Object.entries(this.#schemas.client));
    this.#serverTypes = new Map(Object.entries(this.#schemas.server));
  }

  /** Parses a frame sent by a client. */
  parseClient(raw: RawFrame): ParseResult<ClientFrame> {
    return this.#parse(raw, this.#clientTypes) as ParseResult<ClientFrame>;
  }

  /** Parses a frame sent by a server (what a client SDK does). */
  parseServer(raw: RawFrame): ParseResult<ServerFrame> {
    return this.#parse(raw, this.#serverTypes) as ParseResult<ServerFrame>;
  }

  #parse(raw: RawFrame, types: ReadonlyMap<string, z.ZodType>): ParseResult<unknown> {
    // A decoded body may be anything a caller built: getters, Proxies, detached buffers.
    // Reading it can throw anywhere, so the whole read is guarded; the promise is a result.
    try {
      return this.#read(raw, types);
    } catch {
      return fail("invalid_field", "frame is not plain JSON data", "");
    }
  }

  #read(raw: RawFrame, types: ReadonlyMap<string, z.ZodType>): ParseResult<unknown> {
    let value: unknown;
    if (typeof raw === "string") {
      const max = this.limits.maxFrameBytes;
      if (raw.length > max || (raw.length * 3 > max && utf8Length(raw) > max)) {
        return fail("frame_too_large", `frame exceeds ${max} bytes`);
      }
      value = parseJson(raw);
    } else if (raw instanceof Uint8Array || raw instanceof ArrayBuffer || isChunkList(raw)) {
      const bytes = toBytes(raw as Uint8Array | ArrayBuffer | readonly Uint8Array[]);
      if (bytes === undefined) return fail("bad_json", "frame bytes could not be read");
      if (bytes.byteLength > this.limits.maxFrameBytes) {
        return fail("frame_too_large", `frame exceeds ${this.limits.maxFrameBytes} bytes`);
      }
      let text: string;
      try {
        text = decoder.decode(bytes);
      } catch {
        return fail("bad_json", "frame is not valid UTF-8");
      }
      value = parseJson(text);
    } else {
      value = raw;
    }
    if (value === BAD_JSON) return fail("bad_json", "frame is not valid JSON");
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return fail("invalid_field", "frame must be a JSON object", "");
    }
    const obj = value as Record<string, unknown>;
    const ref = typeof obj.id === "string" && obj.id.length <= 128 ? obj.id : undefined;
    const type = obj.type;
    if (typeof type !== "string") {
      return fail("invalid_field", "frame has no string `type`", "type", ref);
    }
    const schema = types.get(type);
    if (!schema) {
      return fail("unknown_type", `unknown frame type \`${type.slice(0, 64)}\``, undefined, ref);
    }
    const result = schema.safeParse(obj);
    if (result.success) return { ok: true, frame: result.data };
    const issue = pickIssue(result.error.issues);
    const path = issue.path.map(String).join(".");
    return fail("invalid_field", `${path || "frame"}: ${issue.message}`, path, ref);
  }
}

/** Unions report one issue per branch; the deepest path is the most useful to a client. */
function pickIssue(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue {
  let best = issues[0]!;
  const visit = (list: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[]) => {
    for (const issue of list) {
      const full = { ...issue, path: [...prefix, ...issue.path] } as z.core.$ZodIssue;
      if (issue.code === "invalid_union" && issue.errors.length > 0) {
        for (const branch of issue.errors) visit(branch, full.path);
      } else if (full.path.length > best.path.length || best.code === "invalid_union") {
        best = full;
      }
    }
  };
  visit(issues, []);
  return best;
}

const BAD_JSON = Symbol("bad_json");

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return BAD_JSON;
  }
}

/**
 * ws hands fragmented messages over as a list of buffers; a decoded JSON array is not one.
 * Indexed, not `every`: `every` skips the holes of a sparse array.
 */
function isChunkList(raw: unknown): raw is readonly Uint8Array[] {
  if (!Array.isArray(raw) || raw.length === 0) return false;
  for (let i = 0; i < raw.length; i++) if (!(raw[i] instanceof Uint8Array)) return false;
  return true;
}

/** The frame's bytes as one array, or `undefined` when a buffer was detached under us. */
function toBytes(raw: Uint8Array | ArrayBuffer | readonly Uint8Array[]): Uint8Array | undefined {
  try {
    if (raw instanceof Uint8Array) return raw;
    if (raw instanceof ArrayBuffer) return new Uint8Array(raw);
    let total = 0;
    for (let i = 0; i < raw.length; i++) total += raw[i]!.byteLength;
    const out = new Uint8Array(total);
    let offset = 0;
    for (let i = 0; i < raw.length; i++) {
      out.set(raw[i]!, offset);
      offset += raw[i]!.byteLength;
    }
    return out;
  } catch {
    return undefined;
  }
}

function fail(
  code: ProtocolErrorCode,
  message: string,
  path?: string,
  ref?: string,
): ParseResult<never> {
  const opts: { path?: string; ref?: string } = {};
  if (path !== undefined) opts.path = path;
  if (ref !== undefined) opts.ref = ref;
  return { ok: false, error: new ProtocolError(code, message, opts) };
}

const defaultParser = new FrameParser();

/** Parses a client frame with the default limits. Never throws. */
export function parseFrame(raw: RawFrame): ParseResult<ClientFrame> {
  return defaultParser.parseClient(raw);
}

/** Parses a server frame with the default limits. Never throws. */
export function parseServerFrame(raw: RawFrame): ParseResult<ServerFrame> {
  return defaultParser.parseServer(raw);
}

/** Encodes a frame as JSON text for the wire. */
export function encodeFrame(frame: ServerFrame | ClientFrame): string {
  return JSON.stringify(frame);
}
