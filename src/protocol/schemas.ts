import { z } from "zod";

/**
 * Limits applied when parsing frames from the network. Every limit has a safe default;
 * raise them deliberately.
 */
export interface ProtocolLimits {
  /** Largest accepted frame in UTF-8 bytes. @default 65536 */
  readonly maxFrameBytes: number;
  /** Longest message text in UTF-16 code units. @default 16384 */
  readonly maxTextLength: number;
  /** Most message ids in one receipt frame. @default 256 */
  readonly maxIdsPerReceipt: number;
  /** Most users in one presence subscribe or unsubscribe frame. @default 256 */
  readonly maxUsersPerSubscribe: number;
  /** Most attachments on one message. @default 16 */
  readonly maxAttachments: number;
  /** What an id (user, device, message, group, conversation) must look like. @default /^[A-Za-z0-9_.:@-]{1,128}$/ */
  readonly idPattern: RegExp;
}

/** The default {@link ProtocolLimits}. */
export const DEFAULT_LIMITS: ProtocolLimits = Object.freeze({
  maxFrameBytes: 64 * 1024,
  maxTextLength: 16 * 1024,
  maxIdsPerReceipt: 256,
  maxUsersPerSubscribe: 256,
  maxAttachments: 16,
  idPattern: /^[A-Za-z0-9_.:@-]{1,128}$/,
});

/** Builds every frame schema for the given limits. */
export function buildSchemas(limits: ProtocolLimits) {
  const id = z.string().regex(limits.idPattern, "malformed id");
  const priority = z.enum(["high", "normal", "low"]);
  const target = z.union([z.strictObject({ user: id }), z.strictObject({ group: id })]);
  const attachment = z.strictObject({
    kind: z.enum(["image", "video", "audio", "document", "sticker"]),
    mime: z
      .string()
      .min(3)
      .max(255)
      .regex(/^[\w.+-]+\/[\w.+-]+$/, "malformed mime type"),
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex characters"),
    blobId: id,
    name: z.string().max(255).optional(),
  });
  const seq = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);
  const ts = z.number().int().min(0);
  const idList = z.array(id).min(1).max(limits.maxIdsPerReceipt);
  const userList = z.array(id).min(1).max(limits.maxUsersPerSubscribe);
  const systemEvent = z.strictObject({
    event: z.enum(["group.created", "member.added", "member.removed", "member.left"]),
    actor: id,
    members: z.array(id),
  });

  // ---- client -> server ----
  const send = z.strictObject({
    type: z.literal("send"),
    /** The client's id for this message: its idempotency key. */
    id,
    to: target,
    text: z.string().max(limits.maxTextLength),
    attachments: z.array(attachment).max(limits.maxAttachments).optional(),
    priority: priority.optional(),
    /** Accepted only when it equals the authenticated user; anything else is a forgery. */
    from: id.optional(),
  });
  const receiptByIds = z.strictObject({
    type: z.literal("receipt"),
    status: z.enum(["delivered", "read"]),
    ids: idList,
  });
  const receiptWatermark = z.strictObject({
    type: z.literal("receipt"),
    status: z.literal("read"),
    conversation: id,
    upTo: seq,
  });
  const clientReceipt = z.union([receiptByIds, receiptWatermark]);
  const presenceSubscribe = z.strictObject({
    type: z.literal("presence.subscribe"),
    users: userList,
  });
  const presenceUnsubscribe = z.strictObject({
    type: z.literal("presence.unsubscribe"),
    users: userList,
  });
  const typing = z.strictObject({
    type: z.literal("typing"),
    to: target,
    state: z.enum(["composing", "paused"]),
  });
  const ping = z.strictObject({ type: z.literal("ping"), id: id.optional() });
  /** The user did something on this device (focus, input): refreshes presence, no reply. */
  const active = z.strictObject({ type: z.literal("active") });

  // ---- server -> client ----
  const message = z.strictObject({
    type: z.literal("message"),
    id,
    clientId: id,
    from: id,
    fromDevice: id,
    to: target,
    conversation: id,
    seq,
    ts,
    text: z.string(),
    attachments: z.array(attachment).optional(),
    priority: priority.optional(),
    system: systemEvent.optional(),
  });
  const sentReceipt = z.strictObject({
    type: z.literal("receipt"),
    status: z.literal("sent"),
    clientId: id,
    id,
    conversation: id,
    seq,
    ts,
  });
  const ackReceipt = z.strictObject({
    type: z.literal("receipt"),
    status: z.enum(["delivered", "read"]),
    ids: z.array(id).min(1),
    /** The user whose device reached the state (the sender's own id for read sync). */
    by: id,
    device: id.optional(),
    ts,
  });
  const watermarkReceipt = z.strictObject({
    type: z.literal("receipt"),
    status: z.literal("read"),
    conversation: id,
    upTo: seq,
    by: id,
    device: id.optional(),
    ts,
  });
  const failedReceipt = z.strictObject({
    type: z.literal("receipt"),
    status: z.literal("failed"),
    ids: z.array(id).min(1),
    clientId: id.optional(),
    reason: z.string(),
    ts,
  });
  const serverReceipt = z.union([sentReceipt, ackReceipt, watermarkReceipt, failedReceipt]);
  const presence = z.strictObject({
    type: z.literal("presence"),
    user: id,
    status: z.enum(["online", "offline"]),
    /** Null when the subject's privacy hides it from this viewer. */
    lastSeen: ts.nullable(),
  });
  const serverTyping = z.strictObject({
    type: z.literal("typing"),
    from: id,
    to: target,
    conversation: id,
    state: z.enum(["composing", "paused"]),
  });
  const error = z.strictObject({
    type: z.literal("error"),
    code: z.string(),
    message: z.string(),
    path: z.string().optional(),
    /** The client id of the frame that caused the error, when known. */
    ref: z.string().optional(),
    /**
     * The position on this connection (1 for its first frame, counting every frame the
     * client sent, refused ones included) of the frame that caused the error: how a client
     * matches an error to a frame that had no id.
     */
    position: z
      .number()
      .int()
      .min(1)
      .describe(
        "Position on the connection (1 = its first frame, refused frames counted) of the frame that caused the error",
      )
      .optional(),
    /** With `rate_limited`: how long (ms) to wait before the same kind of frame is accepted. */
    retryAfterMs: z.number().int().min(0).optional(),
  });
  const pong = z.strictObject({ type: z.literal("pong"), id: id.optional(), ts });

  const clientFrame = z.union([
    send,
    clientReceipt,
    presenceSubscribe,
    presenceUnsubscribe,
    typing,
    ping,
    active,
  ]);
  const serverFrame = z.union([message, serverReceipt, presence, serverTyping, error, pong]);

  return {
    id,
    target,
    attachment,
    client: {
      send,
      receipt: clientReceipt,
      "presence.subscribe": presenceSubscribe,
      "presence.unsubscribe": presenceUnsubscribe,
      typing,
      ping,
      active,
    },
    server: {
      message,
      receipt: serverReceipt,
      presence,
      typing: serverTyping,
      error,
      pong,
    },
    clientFrame,
    serverFrame,
  } as const;
}

/** The schemas built for the default limits. */
export const schemas = buildSchemas(DEFAULT_LIMITS);

/** A frame a client sends. */
export type ClientFrame = z.output<typeof schemas.clientFrame>;
/** A frame the server sends. */
export type ServerFrame = z.output<typeof schemas.serverFrame>;
/** The `type` of a client frame. */
export type ClientFrameType = ClientFrame["type"];
/** A client frame of one type. */
export type ClientFrameOf<T extends ClientFrameType> = Extract<ClientFrame, { type: T }>;
/** A server frame of one type. */
export type ServerFrameOf<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;
/** The client `send` frame. */
export type SendFrame = ClientFrameOf<"send">;
/** The client `receipt` frame (by ids or as a read watermark). */
export type ClientReceiptFrame = ClientFrameOf<"receipt">;
/** The server `message` frame. */
export type MessageFrame = ServerFrameOf<"message">;
/** The server `receipt` frame (sent, delivered, read, failed). */
export type ServerReceiptFrame = ServerFrameOf<"receipt">;
/** The server `error` frame. */
export type ErrorFrame = ServerFrameOf<"error">;
/** The server `presence` frame. */
export type PresenceFrame = ServerFrameOf<"presence">;
