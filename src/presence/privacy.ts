/**
 * Who may see whom: a privacy hook the tracker asks for every (viewer, subject) pair before
 * it sends a presence frame, and ready-made audiences (everyone, contacts, nobody) with the
 * reciprocal rule.
 */
import type { UserId } from "../core/index.js";
import type { UserPresence } from "./status.js";

/** What a viewer may see of a subject. */
export interface Visibility {
  /** May see `online`. When false the viewer sees `offline` with no last seen. */
  readonly online: boolean;
  /** May see the last-seen time (only when `online` is visible too: a fresh last seen would reveal it). */
  readonly lastSeen: boolean;
}

/** Decides what `viewer` may see of `subject`. Must be synchronous and cheap: it runs per frame. */
export type PrivacyHook = (viewer: UserId, subject: UserId) => Visibility;

/** Everything visible. */
export const SHOW_ALL: Visibility = Object.freeze({ online: true, lastSeen: true });
/** Online visible, last seen hidden. */
export const SHOW_ONLINE_ONLY: Visibility = Object.freeze({ online: true, lastSeen: false });
/** Nothing visible: the subject always looks offline with no last seen. */
export const SHOW_NOTHING: Visibility = Object.freeze({ online: false, lastSeen: false });

/** The default hook: everyone sees everyone. */
export const visibleToEveryone: PrivacyHook = () => SHOW_ALL;

/** Who a setting admits. */
export type Audience = "everyone" | "contacts" | "nobody";

/** A user's privacy settings. */
export interface PresencePrivacySettings {
  /** Who sees the last-seen time. @default "everyone" */
  readonly lastSeen: Audience;
  /** Who sees `online`. @default "everyone" */
  readonly online: Audience;
}

/** Settings that show everything to everyone. */
export const DEFAULT_PRIVACY_SETTINGS: PresencePrivacySettings = Object.freeze({
  lastSeen: "everyone",
  online: "everyone",
});

/** Options of {@link audiencePrivacy}. */
export interface AudiencePrivacyOptions {
  /** The settings of a user; `undefined` means {@link DEFAULT_PRIVACY_SETTINGS}. */
  readonly settingsOf: (user: UserId) => PresencePrivacySettings | undefined;
  /** True when `other` is in `owner`'s contacts. */
  readonly isContact: (owner: UserId, other: UserId) => boolean;
  /**
   * The reciprocal rule: a viewer sees a subject's last seen (or online) only if the viewer
   * shows theirs to the subject too. Who hides last seen cannot see others'. @default true
   */
  readonly reciprocal?: boolean;
}

/** True when `audience`, set by `owner`, admits `other`. */
export function admits(
  audience: Audience,
  owner: UserId,
  other: UserId,
  isContact: (owner: UserId, other: UserId) => boolean,
): boolean {
  return audience === "everyone" || (audience === "contacts" && isContact(owner, other));
}

/**
 * A {@link PrivacyHook} built from per-user audiences, with the reciprocal rule.
 * A user always sees themself.
 * @example audiencePrivacy({ settingsOf: (u) => table.get(u), isContact: (o, u) => book.get(o)?.has(u) ?? false })
 */
export function audiencePrivacy(options: AudiencePrivacyOptions): PrivacyHook {
  const { settingsOf, isContact } = options;
  const reciprocal = options.reciprocal ?? true;
  const shows = (owner: UserId, other: UserId, s: PresencePrivacySettings) => {
    const online = admits(s.online, owner, other, isContact);
    return { online, lastSeen: online && admits(s.lastSeen, owner, other, isContact) };
  };
  return (viewer, subject) => {
    if (viewer === subject) return SHOW_ALL;
    const theirs = shows(subject, viewer, settingsOf(subject) ?? DEFAULT_PRIVACY_SETTINGS);
    let online = theirs.online;
    let lastSeen = theirs.lastSeen;
    if (reciprocal && (online || lastSeen)) {
      const mine = shows(viewer, subject, settingsOf(viewer) ?? DEFAULT_PRIVACY_SETTINGS);
      online = online && mine.online;
      lastSeen = lastSeen && mine.lastSeen;
    }
    return online ? (lastSeen ? SHOW_ALL : SHOW_ONLINE_ONLY) : SHOW_NOTHING;
  };
}

/** What a viewer with `visibility` is shown of `presence`. */
export function applyVisibility(presence: UserPresence, visibility: Visibility): UserPresence {
  if (!visibility.online) return HIDDEN;
  if (presence.status === "online" || visibility.lastSeen || presence.lastSeen === null) {
    return presence;
  }
  return HIDDEN;
}

const HIDDEN: UserPresence = Object.freeze({ status: "offline", lastSeen: null });
