export {
  DEFAULT_GROUP_MAX_SIZE,
  GROUP_RECEIPT_POLICIES,
  type GroupReceiptPolicy,
  type GroupRecord,
  type GroupSystemEvent,
} from "./group.js";
export {
  GroupDirectory,
  type GroupDirectoryOptions,
  type GroupForward,
  type GroupOp,
  type GroupRequest,
  type GroupResponse,
  MAX_GROUP_HOPS,
} from "./group-directory.js";
export {
  type CreateGroupInput,
  GroupService,
  type GroupServiceEvents,
  type GroupServiceOptions,
} from "./group-service.js";
export { type GroupHandover, GroupSharder, type GroupSharderOptions } from "./group-sharder.js";
export {
  type AddMembersResult,
  type GroupPatch,
  type GroupStore,
  MemoryGroupStore,
} from "./group-store.js";
