import { RelayError } from "../core/errors.js";
import type { SessionId } from "../core/ids.js";
import type { Target } from "../core/types.js";
import type { PresenceHandle, PresenceTracker } from "../presence/index.js";
import { errorFrame, type Router } from "../router/router.js";
import type { Connection, GatewayPresence } from "./gateway.js";

/**
 * Connects a {@link PresenceTracker} to a gateway and its router: connections and every frame
 * feed the tracker; its `notify` and `typing` outputs go out through the router to whichever
 * node holds the viewer's devices. Pass the result as the gateway's `presence` option.
 * @example new Gateway({ router, authenticate, presence: presenceBridge(tracker, router) })
 */
export function presenceBridge(tracker: PresenceTracker, router: Router): GatewayPresence {
  const handles = new Map<SessionId, PresenceHandle>();
  const report = (cause: unknown) =>
    router.emit("error", new RelayError("internal", "presence routing failed", { cause }));
  tracker.on("notify", ({ viewer, frame }) => {
    router.toUser(viewer, frame).catch(report);
  });
  tracker.on("typing", ({ frame }) => {
    router.relayTyping(frame).catch(report);
  });
  return {
    connected(session) {
      handles.set(
        session.sessionId,
        tracker.connect(session.userId, session.deviceId, session.sessionId),
      );
    },
    async disconnected(session, clean) {
      handles.delete(session.sessionId);
      tracker.disconnect(session.userId, session.deviceId, { clean, sessionId: session.sessionId });
      // Subscriptions belong to the user: drop them when none of its devices is connected.
      if ((await router.directory.lookup(session.userId)).length === 0) {
        tracker.unsubscribeAll(session.userId);
      }
    },
    touch(connection: Connection) {
      const handle = handles.get(connection.session.sessionId);
      if (handle !== undefined) tracker.touchDevice(handle);
    },
    subscribe(viewer, users) {
      tracker.subscribe(viewer.session.userId, users);
    },
    unsubscribe(viewer, users) {
      tracker.unsubscribe(viewer.session.userId, users);
    },
    async typing(from, frame) {
      const target = frame.to as Target;
      if ("group" in target && !(await router.isMember(target.group, from.session.userId))) {
        return errorFrame(
          "not_group_member",
          "only members may type in a group",
          undefined,
          "to.group",
        );
      }
      // Only within a shared chat: a stranger's typing goes nowhere.
      if ("user" in target && !(await router.sharesChat(from.session.userId, target.user))) {
        return undefined;
      }
      tracker.typing(from.session.userId, target, frame.state);
      return undefined;
    },
  };
}
