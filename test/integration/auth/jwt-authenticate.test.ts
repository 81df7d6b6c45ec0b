/**
 * relaykit/auth against real tokens signed by jose: HS256 with a secret, RS256 with a PEM
 * public key, and RS256 through a JWKS served over HTTP on 127.0.0.1. Then one gateway over a
 * real ws socket: a good token connects as its claims say, a bad one is closed with 4401.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWsGateway } from "../../../src/adapters/ws/index.js";
import { createJwtVerifier, jwtAuthenticate } from "../../../src/auth/index.js";
import { isRelayError, ManualClock } from "../../../src/core/index.js";
import { CLOSE_CODES, Gateway } from "../../../src/gateway/index.js";
import type { ServerFrame } from "../../../src/protocol/index.js";
import { Router } from "../../../src/router/index.js";
import { TestClient } from "../ws/ws-helpers.js";

const secret = "a-test-secret-of-32-bytes-length";
const NOW = 1_800_000_000; // seconds
const clock = new ManualClock(NOW * 1000);

function rsa(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync("rsa", { modulusLength: 2048 });
}

function token(
  claims: Record<string, unknown>,
  key: KeyObject | Uint8Array,
  header: { alg: string; kid?: string } = { alg: "HS256" },
  times: { iat?: number; exp?: number | null } = {},
): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader(header).setIssuedAt(times.iat ?? NOW);
  if (times.exp !== null) jwt.setExpirationTime(times.exp ?? NOW + 600);
  return jwt.sign(key);
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return isRelayError(e) ? e.code : `not a RelayError: ${String(e)}`;
  }
  return "accepted";
}

const hs = new TextEncoder().encode(secret);

describe("createJwtVerifier: HS256", () => {
  const verifier = createJwtVerifier({ secret, clock });

  it("takes the user from `sub` and the device from `device`", async () => {
    const t = await token({ sub: "alice", device: "phone" }, hs);
    await expect(verifier.verify(t)).resolves.toEqual({ userId: "alice", deviceId: "phone" });
  });

  it("refuses an expired token, and one signed with another secret, or tampered", async () => {
    const expired = await token({ sub: "alice", device: "phone" }, hs, undefined, {
      iat: NOW - 120,
      exp: NOW - 60,
    });
    expect(await refusal(verifier.verify(expired))).toBe("unauthorized");
    const other = await token(
      { sub: "alice", device: "phone" },
      new TextEncoder().encode("x".repeat(32)),
    );
    expect(await refusal(verifier.verify(other))).toBe("unauthorized");
    const good = await token({ sub: "alice", device: "phone" }, hs);
    const [h, , s] = good.split(".");
    const forged = Buffer.from(JSON.stringify({ sub: "mallory", device: "phone", exp: NOW + 600 }));
    expect(await refusal(verifier.verify(`${h}.${forged.toString("base64url")}.${s}`))).toBe(
      "unauthorized",
    );
    expect(await refusal(verifier.verify("not.a.jwt"))).toBe("unauthorized");
    expect(await refusal(verifier.verify(""))).toBe("unauthorized");
  });

  it("checks expiry against its clock, and refuses a token with no `exp`", async () => {
    const later = new ManualClock(NOW * 1000);
    const v = createJwtVerifier({ secret, clock: later });
    const t = await token({ sub: "alice", device: "phone" }, hs, undefined, { exp: NOW + 60 });
    await expect(v.verify(t)).resolves.toEqual({ userId: "alice", deviceId: "phone" });
    later.advance(61_000);
    expect(await refusal(v.verify(t))).toBe("unauthorized");
    const forever = await token({ sub: "alice", device: "phone" }, hs, undefined, { exp: null });
    expect(await refusal(verifier.verify(forever))).toBe("unauthorized");
    const lax = createJwtVerifier({ secret, clock, requireExpiry: false });
    await expect(lax.verify(forever)).resolves.toMatchObject({ userId: "alice" });
  });

  it("reads configurable claims, with a default device, and checks issuer and audience", async () => {
    const v = createJwtVerifier({
      secret,
      clock,
      userClaim: "uid",
      deviceClaim: "did",
      defaultDeviceId: "web",
      issuer: "https://id.example",
      audience: "chat",
    });
    const claims = { uid: "bob", iss: "https://id.example", aud: "chat" };
    await expect(v.verify(await token(claims, hs))).resolves.toEqual({
      userId: "bob",
      deviceId: "web",
    });
    await expect(v.verify(await token({ ...claims, did: "tab" }, hs))).resolves.toEqual({
      userId: "bob",
      deviceId: "tab",
    });
    expect(await refusal(v.verify(await token({ ...claims, aud: "other" }, hs)))).toBe(
      "unauthorized",
    );
    expect(await refusal(v.verify(await token({ ...claims, iss: "evil" }, hs)))).toBe(
      "unauthorized",
    );
    expect(await refusal(v.verify(await token({ iss: claims.iss, aud: "chat" }, hs)))).toBe(
      "unauthorized",
    );
    // Without a default device, a token must name its device.
    const strict = createJwtVerifier({ secret, clock });
    expect(await refusal(strict.verify(await token({ sub: "bob" }, hs)))).toBe("unauthorized");
  });

  it("refuses bad options at construction", () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return isRelayError(e) ? e.code : "other";
      }
      return "none";
    };
    expect(code(() => createJwtVerifier({} as never))).toBe("invalid_option");
    expect(code(() => createJwtVerifier({ secret: "short" }))).toBe("invalid_option");
    expect(code(() => createJwtVerifier({ secret, publicKey: "x" } as never))).toBe(
      "invalid_option",
    );
    expect(code(() => createJwtVerifier({ secret, algorithms: ["RS256"] }))).toBe("invalid_option");
    expect(code(() => createJwtVerifier({ publicKey: "not a pem" }))).toBe("invalid_option");
    expect(code(() => createJwtVerifier({ jwks: "ftp://x/jwks.json" }))).toBe("invalid_option");
    expect(code(() => createJwtVerifier({ secret, clockToleranceSec: -1 }))).toBe("invalid_option");
  });
});

describe("createJwtVerifier: RS256", () => {
  const { publicKey, privateKey } = rsa();
  const pem = publicKey.export({ type: "spki", format: "pem" }).toString();

  it("verifies with a PEM public key and refuses HS256 tokens (no algorithm confusion)", async () => {
    const v = createJwtVerifier({ publicKey: pem, clock });
    const t = await token({ sub: "carol", device: "laptop" }, privateKey, { alg: "RS256" });
    await expect(v.verify(t)).resolves.toEqual({ userId: "carol", deviceId: "laptop" });
    // An HS256 token "signed" with the public key's PEM as its secret.
    const confused = await token({ sub: "carol", device: "laptop" }, new TextEncoder().encode(pem));
    expect(await refusal(v.verify(confused))).toBe("unauthorized");
    const otherKey = rsa().privateKey;
    const wrong = await token({ sub: "carol", device: "laptop" }, otherKey, { alg: "RS256" });
    expect(await refusal(v.verify(wrong))).toBe("unauthorized");
  });
});

describe("createJwtVerifier: a JWKS URL on 127.0.0.1", () => {
  const one = rsa();
  const two = rsa();
  let server: Server;
  let url: string;
  let fetches = 0;

  beforeAll(async () => {
    const keys = [
      { ...(await exportJWK(one.publicKey)), kid: "k1", alg: "RS256", use: "sig" },
      { ...(await exportJWK(two.publicKey)), kid: "k2", alg: "RS256", use: "sig" },
    ];
    server = createServer((req, res) => {
      fetches++;
      if (req.url !== "/.well-known/jwks.json") {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("picks the key by `kid`, fetches the set once, and refuses an unknown signer", async () => {
    const v = createJwtVerifier({ jwks: url, clock });
    const a = await token({ sub: "dave", device: "d1" }, one.privateKey, {
      alg: "RS256",
      kid: "k1",
    });
    const b = await token({ sub: "erin", device: "d2" }, two.privateKey, {
      alg: "RS256",
      kid: "k2",
    });
    await expect(v.verify(a)).resolves.toEqual({ userId: "dave", deviceId: "d1" });
    await expect(v.verify(b)).resolves.toEqual({ userId: "erin", deviceId: "d2" });
    expect(fetches).toBe(1);
    const stranger = await token({ sub: "dave", device: "d1" }, rsa().privateKey, {
      alg: "RS256",
      kid: "k1",
    });
    expect(await refusal(v.verify(stranger))).toBe("unauthorized");
    const expired = await token(
      { sub: "dave", device: "d1" },
      one.privateKey,
      { alg: "RS256", kid: "k1" },
      { iat: NOW - 100, exp: NOW - 1 },
    );
    expect(await refusal(v.verify(expired))).toBe("unauthorized");
  });

  it("refuses every token when the JWKS cannot be fetched", async () => {
    const v = createJwtVerifier({ jwks: url.replace("jwks.json", "missing.json"), clock });
    const a = await token({ sub: "dave", device: "d1" }, one.privateKey, {
      alg: "RS256",
      kid: "k1",
    });
    expect(await refusal(v.verify(a))).toBe("unauthorized");
  });
});

describe("jwtAuthenticate on a gateway over a real socket", () => {
  it("connects a good token as its claims say and closes a bad one with 4401", async () => {
    const refused: string[] = [];
    const router = new Router();
    const gateway = new Gateway({
      router,
      authenticate: jwtAuthenticate({ secret, clock, onRefused: (e) => refused.push(e.code) }),
    });
    const ws = createWsGateway({ gateway, port: 0, host: "127.0.0.1", keepaliveMs: 0 });
    await ws.listening();
    const sessions: unknown[] = [];
    gateway.on("open", (c) => sessions.push(c.session));
    try {
      const good = TestClient.open(ws.url(), await token({ sub: "alice", device: "phone" }, hs));
      await good.opened;
      good.send({ type: "ping", id: "p1" });
      await good.waitFor((f: ServerFrame) => f.type === "pong");
      expect(sessions).toEqual([expect.objectContaining({ userId: "alice", deviceId: "phone" })]);

      const expired = await token({ sub: "bob", device: "web" }, hs, undefined, {
        iat: NOW - 100,
        exp: NOW - 1,
      });
      const bad = TestClient.open(ws.url(), expired);
      expect((await bad.closed).code).toBe(CLOSE_CODES.unauthorized);
      expect(refused).toEqual(["unauthorized"]);
      good.socket.terminate();
    } finally {
      await ws.close();
      await gateway.close();
      await router.close();
    }
  });
});
