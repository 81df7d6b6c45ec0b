import { type ErrorCode, isRelayError, RelayError } from "../core/errors.js";
import type { GroupId, NodeId, UserId } from "../core/ids.js";
import type { IdSource } from "../core/random.js";
import { systemIds } from "../core/system.js";
import type { HashRing } from "../sharding/index.js";
import type { GroupReceiptPolicy, GroupRecord } from "./group.js";
import type { CreateGroupInput, GroupService } from "./group-service.js";
import type { GroupHandover, GroupSharder } from "./group-sharder.js";

/**
 * A question or command about a group, sent to the node that owns it. Plain JSON data, so
 * it can cross the NodeBus control channel as is.
 */
export type GroupRequest = GroupOp & {
  /**
   * How many times nodes passed this request on (ring views differ during a rolling
   * change, and a group may have just moved). After {@link MAX_GROUP_HOPS} it is answered
   * where it lands.
   */
  readonly hops?: number;
};

/** How often a {@link GroupRequest} may be passed on between nodes before it is answered where it is. */
export const MAX_GROUP_HOPS = 3;

/** The operations of a {@link GroupRequest}. */
export type GroupOp =
  | { readonly op: "get"; readonly groupId: GroupId }
  | { readonly op: "members"; readonly groupId: GroupId }
  | { readonly op: "isMember"; readonly groupId: GroupId; readonly userId: UserId }
  | { readonly op: "assertMember"; readonly groupId: GroupId; readonly userId: UserId }
  | {
      readonly op: "create";
      readonly groupId: GroupId;
      readonly creator: UserId;
      readonly input: CreateGroupInput;
    }
  | {
      readonly op: "addMembers" | "removeMembers";
      readonly groupId: GroupId;
      readonly actor: UserId;
      readonly userIds: readonly UserId[];
    }
  | {
      readonly op: "promote" | "demote";
      readonly groupId: GroupId;
      readonly actor: UserId;
      readonly userId: UserId;
    }
  | { readonly op: "leave"; readonly groupId: GroupId; readonly userId: UserId }
  | {
      readonly op: "setReceipts";
      readonly groupId: GroupId;
      readonly actor: UserId;
      readonly receipts: GroupReceiptPolicy;
    }
  /** Hand-over push: the old owner gives the new one a group (kept only if absent). */
  | { readonly op: "adopt"; readonly groupId: GroupId; readonly group: GroupRecord }
  /** Hand-over pull: the new owner asks the old one for a group it has not received yet. */
  | { readonly op: "release"; readonly groupId: GroupId; readonly to: NodeId };

/** The owner's answer to a {@link GroupRequest}: a value, or a stable error code. */
export type GroupResponse =
  | { readonly ok: true; readonly value?: unknown }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string };

/** Sends a request to another node and resolves with its {@link GroupDirectory.handle} answer. */
export type GroupForward = (owner: NodeId, request: GroupRequest) => Promise<GroupResponse>;

/** Options of {@link GroupDirectory}. */
export interface GroupDirectoryOptions {
  /** Names the owner of each group. */
  readonly sharder: GroupSharder;
  /** This node's service: it answers for the groups this node owns. */
  readonly service: GroupService;
  /** The link to other nodes (the NodeBus control channel in a cluster). */
  readonly forward: GroupForward;
  /**
   * True when every node's service reads the same store (Redis): then a hand-over moves
   * ownership only, no records. @default false
   */
  readonly sharedStore?: boolean;
  /** Makes ids for groups created without one. @default systemIds() */
  readonly ids?: IdSource;
}

/**
 * The cluster-wide face of the groups: answers locally for groups this node owns and
 * forwards everything else to the owner named by the ring.
 * @remarks Hand-over when the ring changes: {@link GroupDirectory.setRing} then
 * {@link GroupDirectory.rebalance} pushes the groups that left this node to their new
 * owners; a new owner asked about a group it has not received yet pulls it from the old
 * owner first, so no request finds a group missing mid-hand-over. The directory does not
 * retry a failed `forward`: the caller's error handling (or the delivery queue) does.
 * The owner's {@link GroupService} emits the `system` events.
 */
export class GroupDirectory {
  /** {@link members} lists each user once (the router relies on it; see `GroupMembership`). */
  readonly distinctMembers = true;

  readonly #sharder: GroupSharder;
  readonly #service: GroupService;
  readonly #forward: GroupForward;
  readonly #shared: boolean;
  readonly #ids: IdSource;
  #previous: HashRing<NodeId> | undefined;
  /** Groups this node handed over since the last ring change, and where they went. */
  readonly #movedTo = new Map<GroupId, NodeId>();

  constructor(options: GroupDirectoryOptions) {
    this.#sharder = options.sharder;
    this.#service = options.service;
    this.#forward = options.forward;
    this.#shared = options.sharedStore ?? false;
    this.#ids = options.ids ?? systemIds();
  }

  /** This node. */
  get nodeId(): NodeId {
    return this.#sharder.nodeId;
  }

  /** The group's record. @throws RelayError `group_not_found` */
  async get(groupId: GroupId): Promise<GroupRecord> {
    return (await this.#route({ op: "get", groupId })) as GroupRecord;
  }

  /** The members in join order. @throws RelayError `group_not_found` */
  async members(groupId: GroupId): Promise<readonly UserId[]> {
    return (await this.#route({ op: "members", groupId })) as UserId[];
  }

  /** True when the group exists and has the user. */
  async isMember(groupId: GroupId, userId: UserId): Promise<boolean> {
    return (await this.#route({ op: "isMember", groupId, userId })) as boolean;
  }

  /** Checks that the user may post. @throws RelayError `group_not_found`, `not_group_member` */
  async assertMember(groupId: GroupId, userId: UserId): Promise<void> {
    await this.#route({ op: "assertMember", groupId, userId });
  }

  /** Creates a group on its owner; see {@link GroupService.create}. */
  async create(creator: UserId, input: CreateGroupInput = {}): Promise<GroupRecord> {
    const groupId = input.id ?? (this.#ids.next("g") as GroupId);
    return (await this.#route({
      op: "create",
      groupId,
      creator,
      input: { ...input, id: groupId },
    })) as GroupRecord;
  }

  /** See {@link GroupService.addMembers}. */
  async addMembers(
    groupId: GroupId,
    actor: UserId,
    userIds: readonly UserId[],
  ): Promise<readonly UserId[]> {
    return (await this.#route({ op: "addMembers", groupId, actor, userIds })) as UserId[];
  }

  /** See {@link GroupService.removeMembers}. */
  async removeMembers(
    groupId: GroupId,
    actor: UserId,
    userIds: readonly UserId[],
  ): Promise<readonly UserId[]> {
    return (await this.#route({ op: "removeMembers", groupId, actor, userIds })) as UserId[];
  }

  /** See {@link GroupService.promote}. */
  async promote(groupId: GroupId, actor: UserId, userId: UserId): Promise<void> {
    await this.#route({ op: "promote", groupId, actor, userId });
  }

  /** See {@link GroupService.demote}. */
  async demote(groupId: GroupId, actor: UserId, userId: UserId): Promise<void> {
    await this.#route({ op: "demote", groupId, actor, userId });
  }

  /** See {@link GroupService.leave}. */
  async leave(groupId: GroupId, userId: UserId): Promise<void> {
    await this.#route({ op: "leave", groupId, userId });
  }

  /** See {@link GroupService.setReceipts}. */
  async setReceipts(groupId: GroupId, actor: UserId, receipts: GroupReceiptPolicy): Promise<void> {
    await this.#route({ op: "setReceipts", groupId, actor, receipts });
  }

  /**
   * Answers a request from another node (wire the NodeBus control channel to it). Never
   * rejects: errors become `{ ok: false, code }`.
   */
  async handle(request: GroupRequest): Promise<GroupResponse> {
    try {
      const hops = request.hops ?? 0;
      if (hops < MAX_GROUP_HOPS && request.op !== "adopt" && request.op !== "release") {
        const owner = this.#sharder.ownerOf(request.groupId);
        if (owner !== undefined && owner !== this.nodeId) {
          return await this.#forward(owner, { ...request, hops: hops + 1 });
        }
      }
      const value = await this.#local(request);
      return value === undefined ? { ok: true } : { ok: true, value };
    } catch (e) {
      if (isRelayError(e)) return { ok: false, code: e.code, message: e.message };
      return { ok: false, code: "internal", message: e instanceof Error ? e.message : String(e) };
    }
  }

  /** Switches to a new ring, remembering the old one so requests can pull groups still in transit. */
  setRing(ring: HashRing<NodeId>): void {
    this.#movedTo.clear();
    this.#previous = this.#sharder.ring;
    this.#sharder.setRing(ring);
  }

  /**
   * Hands over the groups this node holds but no longer owns: each goes to its new owner
   * and is deleted here once adopted (with a shared store, nothing moves). Returns the
   * hand-overs that completed; a failed one stays here and the new owner pulls it on demand.
   */
  async rebalance(): Promise<GroupHandover[]> {
    const store = this.#service.store;
    // Every group held here that the current ring gives to another node: those the ring diff
    // moved, and any that arrived under an older ring.
    const moves: GroupHandover[] = [];
    for (const groupId of await store.ids()) {
      const to = this.#sharder.ownerOf(groupId);
      if (to !== undefined && to !== this.nodeId) moves.push({ groupId, from: this.nodeId, to });
    }
    if (this.#shared) return moves;
    const done: GroupHandover[] = [];
    for (const m of moves) {
      const group = await store.get(m.groupId);
      if (!group) continue;
      try {
        const res = await this.#forward(m.to!, { op: "adopt", groupId: m.groupId, group });
        if (!res.ok) continue;
      } catch {
        continue;
      }
      await store.delete(m.groupId);
      this.#movedTo.set(m.groupId, m.to!);
      done.push(m);
    }
    return done;
  }

  async #route(request: GroupRequest): Promise<unknown> {
    const owner = this.#sharder.ownerOf(request.groupId);
    if (owner === undefined) {
      throw new RelayError("store_unavailable", "no live node owns groups (the ring is empty)");
    }
    if (owner === this.nodeId) return this.#local(request);
    const res = await this.#forward(owner, request);
    if (!res.ok) throw new RelayError(res.code, res.message);
    return res.value;
  }

  async #local(request: GroupRequest): Promise<unknown> {
    const s = this.#service;
    if (request.op === "adopt") {
      if (!this.#shared && (await s.store.create(request.group))) {
        this.#movedTo.delete(request.groupId);
      }
      return undefined;
    }
    if (request.op === "release") {
      if (this.#shared) return undefined;
      const group = await s.store.get(request.groupId);
      if (group) {
        await s.store.delete(request.groupId);
        // Requests still routed here by nodes on the old ring follow the group.
        this.#movedTo.set(request.groupId, request.to);
      }
      return group;
    }
    await this.#pullIfInTransit(request.groupId);
    const movedTo = this.#movedTo.get(request.groupId);
    const hops = request.hops ?? 0;
    if (movedTo !== undefined && movedTo !== this.nodeId && hops < MAX_GROUP_HOPS) {
      const res = await this.#forward(movedTo, { ...request, hops: hops + 1 });
      if (!res.ok) throw new RelayError(res.code, res.message);
      return res.value;
    }
    switch (request.op) {
      case "get":
        return s.get(request.groupId);
      case "members":
        return s.members(request.groupId);
      case "isMember":
        return s.isMember(request.groupId, request.userId);
      case "assertMember":
        return s.assertMember(request.groupId, request.userId);
      case "create":
        return s.create(request.creator, request.input);
      case "addMembers":
        return s.addMembers(request.groupId, request.actor, request.userIds);
      case "removeMembers":
        return s.removeMembers(request.groupId, request.actor, request.userIds);
      case "promote":
        return s.promote(request.groupId, request.actor, request.userId);
      case "demote":
        return s.demote(request.groupId, request.actor, request.userId);
      case "leave":
        return s.leave(request.groupId, request.userId);
      case "setReceipts":
        return s.setReceipts(request.groupId, request.actor, request.receipts);
    }
  }

  /** A group that just moved here may still sit on its old owner: fetch it first. */
  async #pullIfInTransit(groupId: GroupId): Promise<void> {
    if (this.#shared || !this.#previous) return;
    const was = this.#previous.lookup(groupId);
    if (was === undefined || was === this.nodeId) return;
    const store = this.#service.store;
    if (await store.get(groupId)) return;
    let res: GroupResponse;
    try {
      res = await this.#forward(was, { op: "release", groupId, to: this.nodeId });
    } catch {
      return; // the old owner is gone: the group is answered as missing
    }
    if (res.ok && res.value && (await store.create(res.value as GroupRecord))) {
      this.#movedTo.delete(groupId);
    }
  }
}
