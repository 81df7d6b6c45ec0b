import { createPublicKey, createSecretKey, type KeyObject } from "node:crypto";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import type { Clock } from "../core/clock.js";
import { RelayError } from "../core/errors.js";
import { systemClock } from "../core/system.js";
import type { Authenticate, Identity } from "../gateway/gateway.js";

/** Where a {@link jwtAuthenticate} verifier gets its keys: exactly one of the three. */
export type JwtKeySource =
  /** A shared secret for HMAC tokens (HS256 by default). */
  | { readonly secret: string | Uint8Array }
  /** A public key for RSA or EC tokens (RS256 by default): a PEM (SPKI) string or a `KeyObject`. */
  | { readonly publicKey: string | KeyObject }
  /**
   * A JSON Web Key Set: the URL of the issuer's `jwks.json` (fetched on first use and on an
   * unknown `kid`, then cached), or the set itself.
   */
  | { readonly jwks: string | URL | { readonly keys: readonly object[] } };

/** Options of {@link jwtAuthenticate}, besides the {@link JwtKeySource}. */
export interface JwtAuthOptions {
  /** Accepted `alg` values. @default ["HS256"] with `secret`, ["RS256"] otherwise */
  readonly algorithms?: readonly string[];
  /** Required `iss` (one of). Unchecked when absent. */
  readonly issuer?: string | readonly string[];
  /** Required `aud` (one of). Unchecked when absent. */
  readonly audience?: string | readonly string[];
  /** The claim naming the user. @default "sub" */
  readonly userClaim?: string;
  /** The claim naming the device. @default "device" */
  readonly deviceClaim?: string;
  /**
   * The device id when the token has no device claim; without it such a token is refused.
   * @default undefined
   */
  readonly defaultDeviceId?: string;
  /** Seconds of clock skew allowed on `exp` and `nbf`. @default 0 */
  readonly clockToleranceSec?: number;
  /** Tokens without an `exp` claim are refused unless this is false. @default true */
  readonly requireExpiry?: boolean;
  /** Timeout of one JWKS fetch in ms. @default 5000 */
  readonly jwksTimeoutMs?: number;
  /** The clock `exp` and `nbf` are checked against. @default systemClock */
  readonly clock?: Clock;
}

/** What a {@link jwtAuthenticate} hook reads from the transport: the bearer token. */
export interface TokenCredentials {
  readonly token: string | undefined;
}

/** A JWT checker: resolves to the token's identity, or rejects with a `RelayError`. */
export interface JwtVerifier {
  /** @throws RelayError `unauthorized` (with the jose error as `cause`) for any bad token */
  verify(token: string): Promise<Identity>;
}

const OWNER = "jwtAuthenticate";

function bad(name: string, expected: string, value: unknown): never {
  throw new RelayError(
    "invalid_option",
    `${OWNER}: Expected \`${name}\` to be ${expected}, got \`${String(value)}\` (${typeof value})`,
    { path: name },
  );
}

function keyOf(options: JwtKeySource): { key: KeyObject | JWTVerifyGetKey; hmac: boolean } {
  const o = options as Record<string, unknown>;
  const given = ["secret", "publicKey", "jwks"].filter((k) => o[k] !== undefined);
  if (given.length !== 1) bad("secret", "exactly one of `secret`, `publicKey`, `jwks`", given);
  if (o.secret !== undefined) {
    const s = o.secret;
    if (typeof s === "string" ? s.length < 16 : !(s instanceof Uint8Array) || s.length < 16) {
      bad("secret", "a string or Uint8Array of at least 16 bytes", s);
    }
    return {
      key: createSecretKey(typeof s === "string" ? Buffer.from(s) : (s as Uint8Array)),
      hmac: true,
    };
  }
  if (o.publicKey !== undefined) {
    const k = o.publicKey;
    if (typeof k === "string") {
      try {
        return { key: createPublicKey(k), hmac: false };
      } catch (cause) {
        throw new RelayError("invalid_option", `${OWNER}: \`publicKey\` is not a PEM public key`, {
          cause,
          path: "publicKey",
        });
      }
    }
    if (typeof k !== "object" || k === null || (k as KeyObject).type !== "public") {
      bad("publicKey", "a PEM string or a public KeyObject", k);
    }
    return { key: k as KeyObject, hmac: false };
  }
  const j = o.jwks;
  if (typeof j === "object" && j !== null && !(j instanceof URL)) {
    if (!Array.isArray((j as { keys?: unknown }).keys)) bad("jwks", "a URL or { keys: [...] }", j);
    return { key: createLocalJWKSet(j as Parameters<typeof createLocalJWKSet>[0]), hmac: false };
  }
  let url: URL;
  try {
    url = new URL(String(j));
  } catch {
    return bad("jwks", "a URL or { keys: [...] }", j);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") bad("jwks", "an http(s) URL", j);
  const timeout = (options as JwtAuthOptions).jwksTimeoutMs ?? 5000;
  return { key: createRemoteJWKSet(url, { timeoutDuration: timeout }), hmac: false };
}

/**
 * Builds a JWT checker (on `jose`): signature by a secret, a public key or a JWKS; `exp` and
 * `nbf` against `clock`; optional `iss`/`aud`; user and device from configurable claims.
 * @example const verifier = createJwtVerifier({ jwks: "https://id.example.com/jwks.json" });
 * @throws RelayError `invalid_option` on bad options
 */
export function createJwtVerifier(options: JwtKeySource & JwtAuthOptions): JwtVerifier {
  if (!options || typeof options !== "object") bad("options", "an object", options);
  const { key, hmac } = keyOf(options);
  const algorithms = options.algorithms ?? (hmac ? ["HS256"] : ["RS256"]);
  if (!Array.isArray(algorithms) || algorithms.length === 0) {
    bad("algorithms", "a non-empty array", algorithms);
  }
  if (algorithms.some((a) => a === "none" || hmac !== a.startsWith("HS"))) {
    bad("algorithms", hmac ? "HMAC algorithms (HS*)" : "asymmetric algorithms", algorithms);
  }
  const userClaim = options.userClaim ?? "sub";
  const deviceClaim = options.deviceClaim ?? "device";
  for (const [name, v] of [
    ["userClaim", userClaim],
    ["deviceClaim", deviceClaim],
  ] as const) {
    if (typeof v !== "string" || v === "") bad(name, "a non-empty string", v);
  }
  const fallbackDevice = options.defaultDeviceId;
  if (fallbackDevice !== undefined && (typeof fallbackDevice !== "string" || !fallbackDevice)) {
    bad("defaultDeviceId", "a non-empty string", fallbackDevice);
  }
  const tolerance = options.clockToleranceSec ?? 0;
  if (typeof tolerance !== "number" || !Number.isInteger(tolerance) || tolerance < 0) {
    bad("clockToleranceSec", "an integer >= 0", tolerance);
  }
  const requireExpiry = options.requireExpiry ?? true;
  const clock = options.clock ?? systemClock;
  const base = {
    algorithms: [...algorithms],
    clockTolerance: tolerance,
    requiredClaims: requireExpiry ? ["exp"] : [],
    ...(options.issuer === undefined ? {} : { issuer: options.issuer as string | string[] }),
    ...(options.audience === undefined ? {} : { audience: options.audience as string | string[] }),
  };
  const refuse = (message: string, cause?: unknown): never => {
    throw new RelayError("unauthorized", `${OWNER}: ${message}`, { cause });
  };
  const claim = (payload: JWTPayload, name: string): string | undefined => {
    const v = payload[name];
    return typeof v === "string" && v !== "" ? v : undefined;
  };

  return {
    async verify(token) {
      if (typeof token !== "string" || token === "") return refuse("no token");
      let payload: JWTPayload;
      try {
        const verifyOptions = { ...base, currentDate: new Date(clock.now()) };
        payload =
          typeof key === "function"
            ? (await jwtVerify(token, key, verifyOptions)).payload
            : (await jwtVerify(token, key, verifyOptions)).payload;
      } catch (cause) {
        return refuse("the token did not verify", cause);
      }
      const userId = claim(payload, userClaim);
      if (!userId) return refuse(`the token has no \`${userClaim}\` claim`);
      const deviceId = claim(payload, deviceClaim) ?? fallbackDevice;
      if (!deviceId) return refuse(`the token has no \`${deviceClaim}\` claim`);
      return { userId, deviceId };
    },
  };
}

/**
 * An `authenticate` hook for `Gateway` and the HTTP handler that accepts a JWT bearer
 * token (see {@link createJwtVerifier}) and refuses anything else. `onRefused` hears why a
 * token was refused (for logs; never log the token itself).
 * @example
 * const gateway = new Gateway({ router, authenticate: jwtAuthenticate({ secret }) });
 * @throws RelayError `invalid_option` on bad options
 */
export function jwtAuthenticate(
  options: JwtKeySource & JwtAuthOptions & { readonly onRefused?: (error: RelayError) => void },
): Authenticate<TokenCredentials> {
  const verifier = createJwtVerifier(options);
  const onRefused = options.onRefused;
  if (onRefused !== undefined && typeof onRefused !== "function") {
    bad("onRefused", "a function", onRefused);
  }
  return async ({ token }) => {
    try {
      return await verifier.verify(token ?? "");
    } catch (e) {
      onRefused?.(e as RelayError);
      return undefined;
    }
  };
}
