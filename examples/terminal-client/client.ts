/**
 * `npm run demo:client -- --user alice [--device d1] [--url ws://127.0.0.1:8080]`
 *
 * A terminal chat on the demo server, talking the wire protocol with `ws` directly.
 *   @bob hello     send "hello" to bob (later lines without @ go to the last recipient)
 *   /help /quit
 * Your messages get ticks as receipts arrive: ✓ sent (the server has it), ✓✓ delivered (a
 * device of the recipient has it), ✓✓ in blue + "read". Incoming messages are acked as
 * delivered when they arrive and as read once printed.
 * DEMO ONLY: the demo server trusts the token `<user>:<device>` as the identity.
 */
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { WebSocket } from "ws";

type Frame = Record<string, unknown> & { type: string };

const { values } = parseArgs({
  options: {
    user: { type: "string", short: "u" },
    device: { type: "string", short: "d", default: "term" },
    url: { type: "string", default: `ws://127.0.0.1:${process.env.PORT ?? 8080}` },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help || !values.user) {
  console.log(
    "usage: npm run demo:client -- --user <name> [--device <id>] [--url ws://127.0.0.1:8080]",
  );
  process.exit(values.help ? 0 : 2);
}
const me = values.user;
const device = values.device;
const url = values.url;

const tty = process.stdout.isTTY;
const paint = (code: string, s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const dim = (s: string) => paint("2", s);
const blue = (s: string) => paint("34", s);
const bold = (s: string) => paint("1", s);

const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: "> " });
/** Prints a line above the prompt without mangling what the user is typing. */
function say(line: string): void {
  if (tty) {
    process.stdout.write("\r\x1b[K");
    console.log(line);
    rl.prompt(true);
  } else {
    console.log(line);
  }
}

// ---- outgoing messages and their ticks --------------------------------------------------
type Status = "sending" | "sent" | "delivered" | "read" | "failed";
const RANK: Record<Status, number> = { sending: 0, sent: 1, delivered: 2, read: 3, failed: 4 };
interface Outgoing {
  readonly clientId: string;
  readonly to: string;
  readonly text: string;
  status: Status;
  id?: string;
  conversation?: string;
  seq?: number;
}
const outgoing = new Map<string, Outgoing>(); // by client id
const byServerId = new Map<string, Outgoing>();
const seen = new Set<string>(); // incoming message ids (redeliveries are shown once)
let lastPeer: string | undefined;

function tick(status: Status): string {
  switch (status) {
    case "sending":
      return dim("…");
    case "sent":
      return "✓";
    case "delivered":
      return "✓✓";
    case "read":
      return `${blue("✓✓")} ${blue("read")}`;
    case "failed":
      return paint("31", "✗ failed");
  }
}

function advance(o: Outgoing, status: Status): void {
  if (RANK[status] <= RANK[o.status]) return; // ticks never go backwards
  o.status = status;
  say(`  ${tick(status)}  ${dim(`→ ${o.to}:`)} ${dim(o.text)}`);
}

// ---- the connection -------------------------------------------------------------------
let socket: WebSocket | undefined;
let quitting = false;
let attempt = 0;

function send(frame: Frame): void {
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

function connect(): void {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${me}:${device}` } });
  socket = ws;
  ws.on("open", () => {
    attempt = 0;
    say(dim(`connected to ${url} as ${me} (device ${device})`));
    // Anything without its ✓ yet is sent again; the server dedupes by client id.
    for (const o of outgoing.values()) {
      if (o.status === "sending")
        send({ type: "send", id: o.clientId, to: { user: o.to }, text: o.text });
    }
  });
  ws.on("message", (data) => {
    let frame: Frame;
    try {
      frame = JSON.parse(data.toString()) as Frame;
    } catch {
      return;
    }
    onFrame(frame);
  });
  ws.on("error", (e) => {
    if (attempt === 0) say(dim(`connection error: ${e.message}`));
  });
  ws.on("close", (code, reason) => {
    if (quitting) return;
    if (code === 4401) {
      say(`refused by the server (4401 ${reason.toString()}): check --user/--device`);
      process.exit(1);
    }
    const wait = Math.min(10_000, 500 * 2 ** attempt++);
    say(
      dim(
        `disconnected (${code}${reason.length ? ` ${reason.toString()}` : ""}); retrying in ${wait} ms`,
      ),
    );
    setTimeout(connect, wait);
  });
}

function onFrame(f: Frame): void {
  switch (f.type) {
    case "message":
      onMessage(f);
      return;
    case "receipt":
      onReceipt(f);
      return;
    case "error":
      say(
        paint(
          "31",
          `! ${String(f.code)}: ${String(f.message)}${f.ref ? ` (${String(f.ref)})` : ""}`,
        ),
      );
      if (typeof f.ref === "string" && f.code !== "bad_json") outgoing.delete(f.ref);
      return;
    default:
      return;
  }
}

function onMessage(f: Frame): void {
  const id = String(f.id);
  // Ack every copy (redeliveries too): the server keeps it queued until this device acks.
  send({ type: "receipt", status: "delivered", ids: [id] });
  if (seen.has(id)) return;
  seen.add(id);
  const time = new Date(Number(f.ts)).toTimeString().slice(0, 5);
  if (f.from === me) {
    const to = (f.to as { user?: string }).user ?? "?";
    say(`${dim(time)} ${dim(`(you on ${String(f.fromDevice)}) → ${to}:`)} ${String(f.text)}`);
    return;
  }
  say(`${dim(time)} ${bold(String(f.from))}: ${String(f.text)}`);
  lastPeer ??= String(f.from);
  // Printed on screen = read.
  send({ type: "receipt", status: "read", ids: [id] });
}

function onReceipt(f: Frame): void {
  if (f.status === "sent") {
    const o = outgoing.get(String(f.clientId));
    if (!o) return;
    o.id = String(f.id);
    o.conversation = String(f.conversation);
    o.seq = Number(f.seq);
    byServerId.set(o.id, o);
    advance(o, "sent");
    return;
  }
  const status = f.status as Status;
  if (Array.isArray(f.ids)) {
    for (const id of f.ids) {
      const o = byServerId.get(String(id));
      if (o && (f.by === undefined || f.by === o.to || status === "failed")) advance(o, status);
    }
    return;
  }
  // A read watermark: everything of ours in that conversation up to `upTo`.
  if (status === "read" && typeof f.upTo === "number") {
    for (const o of byServerId.values()) {
      if (o.conversation === f.conversation && (o.seq ?? Infinity) <= f.upTo && f.by === o.to) {
        advance(o, "read");
      }
    }
  }
}

// ---- input ----------------------------------------------------------------------------
const HELP = `  @<user> <text>  send to a user (then plain lines go to the last one)
  /quit           leave`;

rl.on("line", (line) => {
  const input = line.trim();
  if (!input) return rl.prompt();
  if (input === "/quit" || input === "/exit") return quit();
  if (input === "/help") {
    say(HELP);
    return;
  }
  let to = lastPeer;
  let text = input;
  const m = /^@([^\s]+)\s+([\s\S]+)$/.exec(input);
  if (m) {
    to = m[1]!;
    text = m[2]!;
  } else if (input.startsWith("@")) {
    say("usage: @bob hello");
    return;
  }
  if (!to) {
    say("who to? start with @user, e.g. @bob hello");
    return;
  }
  lastPeer = to;
  const o: Outgoing = { clientId: `t-${randomUUID()}`, to, text, status: "sending" };
  outgoing.set(o.clientId, o);
  send({ type: "send", id: o.clientId, to: { user: to }, text });
  rl.prompt();
});
rl.on("close", quit);

function quit(): void {
  if (quitting) return;
  quitting = true;
  socket?.close(1000, "bye");
  console.log("\nbye");
  process.exit(0);
}

say(`relaykit terminal client: ${bold(me)}. Type ${bold("@bob hello")} to chat, /help for more.`);
connect();
rl.prompt();
