import { z } from "zod";
import type { Clock } from "../core/clock.js";
import { RelayError } from "../core/errors.js";
import { TypedEmitter } from "../core/events.js";
import type { GroupId, UserId } from "../core/ids.js";
import { parseOptions } from "../core/options.js";
import type { IdSource } from "../core/random.js";
import { systemClock, systemIds } from "../core/system.js";
import type { SystemEvent } from "../core/types.js";
import { buildSchemas, DEFAULT_LIMITS } from "../protocol/index.js";
import {
  DEFAULT_GROUP_MAX_SIZE,
  GROUP_RECEIPT_POLICIES,
  type GroupReceiptPolicy,
  type GroupRecord,
  type GroupSystemEvent,
} from "./group.js";
import { type GroupStore, MemoryGroupStore } from "./group-store.js";

/** Options of {@link GroupService}. */
export interface GroupServiceOptions {
  /** Where groups live. @default a new {@link MemoryGroupStore} */
  readonly store?: GroupStore;
  /** The most members a group may have. @default 1024 */
  readonly maxSize?: number;
  /** Stamps `createdAt`. @default systemClock */
  readonly clock?: Clock;
  /** Makes group ids when `create` is given none. @default systemIds() */
  readonly ids?: IdSource;
  /**
   * What a group or user id must look like: set it to the gateway's `limits.idPattern` when
   * you changed that, so a group never holds an id its own clients' frames refuse.
   * @default the protocol's id rule, /^[A-Za-z0-9_.:@-]{1,128}$/
   */
  readonly idPattern?: RegExp;
}

/** What a new group starts with. */
export interface CreateGroupInput {
  /** @default a new id from the id source, prefixed `g` */
  readonly id?: GroupId;
  /** @default "" */
  readonly name?: string;
  /** Members besides the creator (who is always a member and an admin). */
  readonly members?: readonly UserId[];
  /** @default "none" */
  readonly receipts?: GroupReceiptPolicy;
}

/** Events of {@link GroupService}. */
export interface GroupServiceEvents {
  /** A membership change, for the router to post as a system message in the group's conversation. */
  system: (e: GroupSystemEvent) => void;
}

const schema = z.object({
  store: z.custom<GroupStore>((v) => typeof v === "object" && v !== null).optional(),
  maxSize: z.int().min(2).max(1_000_000).default(DEFAULT_GROUP_MAX_SIZE),
  clock: z.custom<Clock>((v) => typeof v === "object" && v !== null).optional(),
  ids: z.custom<IdSource>((v) => typeof v === "object" && v !== null).optional(),
  idPattern: z.instanceof(RegExp).optional(),
});

/**
 * Groups and their membership rules: admins add, remove and promote; anyone may leave; a
 * group holds at most `maxSize` members. Every membership change is emitted as a `system`
 * event (`group.created`, `member.added`, `member.removed`, `member.left`).
 * @remarks It decides nothing about delivery: the router asks it for members (or, across
 * nodes, a {@link GroupDirectory} does) and fans out. Errors are {@link RelayError}s with
 * codes `group_not_found`, `not_group_admin`, `not_group_member`, `group_full`, `duplicate`.
 * @example
 * const groups = new GroupService({ maxSize: 256 });
 * groups.on("system", ({ groupId, event }) => router.postSystem(groupId, event));
 * const g = await groups.create(alice, { name: "climbing", members: [bob] });
 */
export class GroupService extends TypedEmitter<GroupServiceEvents> {
  /** {@link members} lists each user once (the router relies on it; see `GroupMembership`). */
  readonly distinctMembers = true;

  /** The most members a group may have. */
  readonly maxSize: number;
  /** The store (shared with a {@link GroupDirectory} for hand-over). */
  readonly store: GroupStore;
  readonly #clock: Clock;
  readonly #ids: IdSource;
  /** The protocol's id rule (the parser's own zod schema for ids). */
  readonly #id: z.ZodType<string>;

  /** @throws RelayError `invalid_option` */
  constructor(options: GroupServiceOptions = {}) {
    super();
    const o = parseOptions(schema, options, "GroupService");
    this.maxSize = o.maxSize;
    this.store = options.store ?? new MemoryGroupStore();
    this.#clock = options.clock ?? systemClock;
    this.#ids = options.ids ?? systemIds();
    this.#id = buildSchemas({
      ...DEFAULT_LIMITS,
      idPattern: o.idPattern ?? DEFAULT_LIMITS.idPattern,
    }).id;
  }

  /**
   * Creates a group with `creator` as member and admin.
   * @throws RelayError `group_full` (too many members), `duplicate` (id taken), `invalid_field`
   * (bad receipts, or an id the protocol would refuse: the path names it, e.g. `members.2`)
   */
  async create(creator: UserId, input: CreateGroupInput = {}): Promise<GroupRecord> {
    const receipts = input.receipts ?? "none";
    checkPolicy(receipts);
    this.#checkId(creator, "creator");
    if (input.id !== undefined) this.#checkId(input.id, "id");
    this.#checkIds(input.members ?? [], "members");
    const members = [...new Set([creator, ...(input.members ?? [])])];
    if (members.length > this.maxSize) {
      throw new RelayError("group_full", `a group holds at most ${this.maxSize} members`);
    }
    const record: GroupRecord = {
      id: input.id ?? (this.#ids.next("g") as GroupId),
      name: input.name ?? "",
      createdBy: creator,
      createdAt: this.#clock.now(),
      members,
      admins: [creator],
      receipts,
    };
    if (!(await this.store.create(record))) {
      throw new RelayError("duplicate", `group \`${record.id}\` already exists`);
    }
    this.#emit(record.id, { event: "group.created", actor: creator, members });
    return record;
  }

  /**
   * The group.
   * @throws RelayError `group_not_found`
   */
  async get(groupId: GroupId): Promise<GroupRecord> {
    const g = await this.store.get(groupId);
    if (!g) throw notFound(groupId);
    return g;
  }

  /**
   * The members, in join order.
   * @throws RelayError `group_not_found`
   */
  async members(groupId: GroupId): Promise<readonly UserId[]> {
    const m = await this.store.members(groupId);
    if (!m) throw notFound(groupId);
    return m;
  }

  /** True when the group exists and has the user. */
  async isMember(groupId: GroupId, userId: UserId): Promise<boolean> {
    return this.store.isMember(groupId, userId);
  }

  /**
   * Checks that `userId` may post to the group (only members may).
   * @throws RelayError `group_not_found`, `not_group_member`
   */
  async assertMember(groupId: GroupId, userId: UserId): Promise<void> {
    if (await this.store.isMember(groupId, userId)) return;
    if (!(await this.store.get(groupId))) throw notFound(groupId);
    throw new RelayError("not_group_member", `\`${userId}\` is not a member of \`${groupId}\``);
  }

  /**
   * Adds users (an admin's act); returns those who were not members yet.
   * @throws RelayError `group_not_found`, `not_group_admin`, `group_full`, `invalid_field`
   * (an id the protocol would refuse; the path names it, e.g. `userIds.0`)
   */
  async addMembers(
    groupId: GroupId,
    actor: UserId,
    userIds: readonly UserId[],
  ): Promise<readonly UserId[]> {
    this.#checkIds(userIds, "userIds");
    await this.#assertAdmin(groupId, actor);
    const r = await this.store.addMembers(groupId, userIds, this.maxSize);
    if (r.status === "not_found") throw notFound(groupId);
    if (r.status === "full") {
      throw new RelayError(
        "group_full",
        `\`${groupId}\` has ${r.size} members; adding ${userIds.length} would pass ${this.maxSize}`,
      );
    }
    if (r.added.length > 0) {
      this.#emit(groupId, { event: "member.added", actor, members: r.added });
    }
    return r.added;
  }

  /**
   * Removes members (an admin's act); returns those who were members.
   * @throws RelayError `group_not_found`, `not_group_admin`
   */
  async removeMembers(
    groupId: GroupId,
    actor: UserId,
    userIds: readonly UserId[],
  ): Promise<readonly UserId[]> {
    await this.#assertAdmin(groupId, actor);
    const removed = await this.store.removeMembers(groupId, userIds);
    if (!removed) throw notFound(groupId);
    if (removed.length > 0) {
      this.#emit(groupId, { event: "member.removed", actor, members: removed });
      await this.#keepAnAdmin(groupId);
    }
    return removed;
  }

  /**
   * Makes a member an admin (an admin's act).
   * @throws RelayError `group_not_found`, `not_group_admin`, `not_group_member`
   */
  async promote(groupId: GroupId, actor: UserId, userId: UserId): Promise<void> {
    await this.#assertAdmin(groupId, actor);
    if (!(await this.store.setAdmin(groupId, userId, true))) {
      throw new RelayError("not_group_member", `\`${userId}\` is not a member of \`${groupId}\``);
    }
  }

  /**
   * Takes admin rights from a member (an admin's act; the last admin stays).
   * @throws RelayError `group_not_found`, `not_group_admin`, `not_group_member`
   */
  async demote(groupId: GroupId, actor: UserId, userId: UserId): Promise<void> {
    const g = await this.#assertAdmin(groupId, actor);
    if (!g.members.includes(userId)) {
      throw new RelayError("not_group_member", `\`${userId}\` is not a member of \`${groupId}\``);
    }
    if (g.admins.length === 1 && g.admins[0] === userId) return;
    await this.store.setAdmin(groupId, userId, false);
  }

  /**
   * A member leaves. When the last admin leaves, the longest-standing member becomes admin.
   * @throws RelayError `group_not_found`, `not_group_member`
   */
  async leave(groupId: GroupId, userId: UserId): Promise<void> {
    const removed = await this.store.removeMembers(groupId, [userId]);
    if (!removed) throw notFound(groupId);
    if (removed.length === 0) {
      throw new RelayError("not_group_member", `\`${userId}\` is not a member of \`${groupId}\``);
    }
    this.#emit(groupId, { event: "member.left", actor: userId, members: [userId] });
    await this.#keepAnAdmin(groupId);
  }

  /**
   * Sets the group's receipt policy (an admin's act).
   * @throws RelayError `group_not_found`, `not_group_admin`, `invalid_field`
   */
  async setReceipts(groupId: GroupId, actor: UserId, receipts: GroupReceiptPolicy): Promise<void> {
    checkPolicy(receipts);
    await this.#assertAdmin(groupId, actor);
    if (!(await this.store.update(groupId, { receipts }))) throw notFound(groupId);
  }

  /** Refuses an id the protocol would refuse: a group must never hold one its clients reject. */
  #checkId(id: unknown, path: string): void {
    if (!this.#id.safeParse(id).success) {
      const shown = typeof id === "string" ? `\`${id.slice(0, 64)}\`` : typeof id;
      throw new RelayError("invalid_field", `${path}: malformed id ${shown}`, { path });
    }
  }

  #checkIds(ids: readonly unknown[], path: string): void {
    if (!Array.isArray(ids))
      throw new RelayError("invalid_field", `${path}: expected a list of ids`, { path });
    for (let i = 0; i < ids.length; i++) this.#checkId(ids[i], `${path}.${i}`);
  }

  async #assertAdmin(groupId: GroupId, actor: UserId): Promise<GroupRecord> {
    const g = await this.store.get(groupId);
    if (!g) throw notFound(groupId);
    if (!g.admins.includes(actor)) {
      throw new RelayError("not_group_admin", `\`${actor}\` is not an admin of \`${groupId}\``);
    }
    return g;
  }

  /** A group with members always has an admin: promote the longest-standing member. */
  async #keepAnAdmin(groupId: GroupId): Promise<void> {
    const g = await this.store.get(groupId);
    if (!g || g.admins.length > 0) return;
    const next = g.members[0];
    if (next !== undefined) await this.store.setAdmin(groupId, next, true);
  }

  #emit(groupId: GroupId, event: SystemEvent): void {
    this.emit("system", { groupId, event });
  }
}

function notFound(groupId: GroupId): RelayError {
  return new RelayError("group_not_found", `no group \`${groupId}\``);
}

function checkPolicy(p: unknown): asserts p is GroupReceiptPolicy {
  if (!(GROUP_RECEIPT_POLICIES as readonly unknown[]).includes(p)) {
    throw new RelayError(
      "invalid_field",
      `receipts must be one of ${GROUP_RECEIPT_POLICIES.join(", ")}, got \`${String(p)}\``,
      { path: "receipts" },
    );
  }
}
