/**
 * `npm run demo`: the single-node relaykit demo (in memory; port from PORT, default 8080;
 * on 127.0.0.1 unless HOST says otherwise, e.g. HOST=0.0.0.0 to reach it from other machines).
 * DEMO ONLY: the token is trusted as the identity (see app.ts `demoAuthenticate`).
 */
import { startServer } from "./app.js";

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST;
const app = await startServer({ port, ...(host ? { host } : {}) });
const urlPort = port === 8080 ? "" : ` --url ws://127.0.0.1:${app.port}`;

console.log(`relaykit demo (single node, in memory) listening on ${app.host}:${app.port}${
  app.host === "127.0.0.1" ? " (this machine only; HOST=0.0.0.0 to expose it)" : ""
}

  Chat from two terminals:
    npm run demo:client -- --user alice${urlPort}
    npm run demo:client -- --user bob${urlPort}
  then type:  @bob hello      (a user must have connected once before you can message them)
${app.hasBrowserPage ? `\n  Or in a browser (open it twice):\n    http://localhost:${app.port}/\n` : ""}
  Or over HTTP:
    curl -X POST http://127.0.0.1:${app.port}/api/frames -H 'authorization: Bearer alice' \\
      -H 'content-type: application/json' -d '{"type":"send","id":"c1","to":{"user":"bob"},"text":"hi"}'

  Demo auth: the token IS the identity ("alice" or "alice:phone"). Demo only, never in production.
  Ctrl-C to stop.`);

let stopping = false;
const stop = (signal: string) => {
  if (stopping) {
    console.log("forced exit");
    process.exit(1);
  }
  stopping = true;
  console.log(`\n${signal}: closing connections...`);
  app.close().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
};
process.on("SIGINT", () => stop("SIGINT"));
process.on("SIGTERM", () => stop("SIGTERM"));
