import type { GroupId, UserId } from "../core/ids.js";
import type { GroupReceiptPolicy, GroupRecord } from "./group.js";

/** The outcome of {@link GroupStore.addMembers}. */
export type AddMembersResult =
  | { readonly status: "ok"; readonly added: readonly UserId[] }
  | { readonly status: "not_found" }
  | { readonly status: "full"; readonly size: number };

/** The fields of a group that {@link GroupStore.update} changes. */
export interface GroupPatch {
  readonly name?: string;
  readonly receipts?: GroupReceiptPolicy;
}

/**
 * Where groups and their members live.
 * @remarks It does not check who may do what (admins, membership rules): that is
 * {@link GroupService}'s job. It does keep two invariants atomically, because a distributed
 * store must: a group never exceeds the `limit` given to `addMembers`, and admins are
 * always members (removing a member drops its admin flag). Returned arrays are copies.
 */
export interface GroupStore {
  /** Stores a new group; false (and no change) when the id is taken. */
  create(group: GroupRecord): Promise<boolean>;
  /** Stores a group whatever is there (hand-over between nodes). */
  put(group: GroupRecord): Promise<void>;
  /** The group, or undefined. */
  get(groupId: GroupId): Promise<GroupRecord | undefined>;
  /**
   * Adds the users who are not members yet, all or none: `full` when the group would then
   * have more than `limit` members. `added` keeps the given order, without duplicates.
   */
  addMembers(
    groupId: GroupId,
    userIds: readonly UserId[],
    limit: number,
  ): Promise<AddMembersResult>;
  /** Removes members (and their admin flag); returns those that were members, undefined when no group. */
  removeMembers(
    groupId: GroupId,
    userIds: readonly UserId[],
  ): Promise<readonly UserId[] | undefined>;
  /** Makes a member an admin or not; false when the group or the member is missing. */
  setAdmin(groupId: GroupId, userId: UserId, admin: boolean): Promise<boolean>;
  /** Changes name or receipt policy; false when the group is missing. */
  update(groupId: GroupId, patch: GroupPatch): Promise<boolean>;
  /** The members in join order, or undefined when no group. */
  members(groupId: GroupId): Promise<readonly UserId[] | undefined>;
  /** True when the group exists and has the user. */
  isMember(groupId: GroupId, userId: UserId): Promise<boolean>;
  /** Deletes a group; false when it was not there. */
  delete(groupId: GroupId): Promise<boolean>;
  /** Every group id held (hand-over walks them). */
  ids(): Promise<readonly GroupId[]>;
}

interface Entry {
  record: Omit<GroupRecord, "members" | "admins">;
  members: Set<UserId>;
  admins: Set<UserId>;
  /** The record as last handed out, until the entry changes (see {@link viewOf}). */
  view?: GroupRecord | undefined;
}

/** The in-memory {@link GroupStore}: one process, no services. */
export class MemoryGroupStore implements GroupStore {
  readonly #groups = new Map<GroupId, Entry>();

  async create(group: GroupRecord): Promise<boolean> {
    if (this.#groups.has(group.id)) return false;
    this.#groups.set(group.id, toEntry(group));
    return true;
  }

  async put(group: GroupRecord): Promise<void> {
    this.#groups.set(group.id, toEntry(group));
  }

  async get(groupId: GroupId): Promise<GroupRecord | undefined> {
    const e = this.#groups.get(groupId);
    return e && viewOf(e);
  }

  async addMembers(
    groupId: GroupId,
    userIds: readonly UserId[],
    limit: number,
  ): Promise<AddMembersResult> {
    const e = this.#groups.get(groupId);
    if (!e) return { status: "not_found" };
    const added = [...new Set(userIds)].filter((u) => !e.members.has(u));
    if (e.members.size + added.length > limit) return { status: "full", size: e.members.size };
    for (const u of added) e.members.add(u);
    if (added.length > 0) e.view = undefined;
    return { status: "ok", added };
  }

  async removeMembers(
    groupId: GroupId,
    userIds: readonly UserId[],
  ): Promise<readonly UserId[] | undefined> {
    const e = this.#groups.get(groupId);
    if (!e) return undefined;
    const removed: UserId[] = [];
    for (const u of userIds) {
      if (e.members.delete(u)) {
        e.view = undefined;
        e.admins.delete(u);
        removed.push(u);
      }
    }
    return removed;
  }

  async setAdmin(groupId: GroupId, userId: UserId, admin: boolean): Promise<boolean> {
    const e = this.#groups.get(groupId);
    if (!e?.members.has(userId)) return false;
    if (admin) e.admins.add(userId);
    else e.admins.delete(userId);
    e.view = undefined;
    return true;
  }

  async update(groupId: GroupId, patch: GroupPatch): Promise<boolean> {
    const e = this.#groups.get(groupId);
    if (!e) return false;
    e.view = undefined;
    e.record = {
      ...e.record,
      ...(patch.name === undefined ? {} : { name: patch.name }),
      ...(patch.receipts === undefined ? {} : { receipts: patch.receipts }),
    };
    return true;
  }

  async members(groupId: GroupId): Promise<readonly UserId[] | undefined> {
    const e = this.#groups.get(groupId);
    return e && viewOf(e).members;
  }

  async isMember(groupId: GroupId, userId: UserId): Promise<boolean> {
    return this.#groups.get(groupId)?.members.has(userId) ?? false;
  }

  async delete(groupId: GroupId): Promise<boolean> {
    return this.#groups.delete(groupId);
  }

  async ids(): Promise<readonly GroupId[]> {
    return [...this.#groups.keys()];
  }
}

function toEntry(group: GroupRecord): Entry {
  const { members, admins, ...record } = group;
  const m = new Set(members);
  return { record: { ...record }, members: m, admins: new Set(admins.filter((a) => m.has(a))) };
}

/**
 * The entry as a record, frozen (its lists too) and kept until the entry changes: a busy
 * group's members are read per message, and the router recognises the same list at once.
 */
function viewOf(e: Entry): GroupRecord {
  e.view ??= Object.freeze({
    ...e.record,
    members: Object.freeze([...e.members]),
    admins: Object.freeze([...e.admins]),
  });
  return e.view;
}
