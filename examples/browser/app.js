// The relaykit browser demo: two people, one chat, ✓ / ✓✓ / blue ✓✓ ticks and presence.
// The SDK comes from the demo server as one ES module (examples/browser/bundle.ts).
import { directConversation, RelayClient } from "/client.js";

const $ = (id) => document.getElementById(id);
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const TICKS = { pending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "!" };

/** State the page keeps; also on `window.relaykitDemo` so tests can look inside. */
const demo = { client: undefined, me: "", peer: "", conversation: "", statusLog: [] };
window.relaykitDemo = demo;

/** Bubbles of our own messages by client id, and every shown message id (no duplicates). */
const mine = new Map();
const shown = new Set();
let focused = document.hasFocus();
let typingTimer;
let lastTypingSent = 0;

const clockTime = (ts) =>
  new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** The server's 1:1 conversation id (unambiguous for any pair of ids), from the SDK. */
function conversationOf(a, b) {
  return directConversation(a, b);
}

/** The chat counts as seen only while the page is visible and focused (like a phone screen). */
function markReadIfSeen() {
  if (demo.client && document.visibilityState === "visible" && focused) {
    demo.client.markRead(demo.conversation);
  }
}

function bubble(text, ts, isMine) {
  const li = document.createElement("li");
  li.className = isMine ? "msg mine" : "msg";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  const meta = document.createElement("span");
  meta.className = "meta";
  const time = document.createElement("time");
  time.textContent = clockTime(ts);
  meta.append(time);
  li.append(body, meta);
  const list = $("messages");
  const typing = list.querySelector(".typing");
  list.insertBefore(li, typing);
  list.scrollTop = list.scrollHeight;
  return li;
}

function setTicks(li, status, reason) {
  let ticks = li.querySelector(".ticks");
  if (!ticks) {
    ticks = document.createElement("span");
    li.querySelector(".meta").append(ticks);
  }
  ticks.className = `ticks ${status}`;
  ticks.textContent = TICKS[status] ?? "";
  ticks.title = status === "failed" ? `failed: ${reason}` : status;
  li.dataset.status = status;
}

function showPresence(p) {
  const el = $("presence");
  el.classList.toggle("online", p.status === "online");
  if (p.status === "online") el.textContent = "online";
  else if (p.lastSeen === null) el.textContent = "offline";
  else el.textContent = `last seen at ${clockTime(p.lastSeen)}`;
}

function showTyping(on) {
  const list = $("messages");
  let el = list.querySelector(".typing");
  if (on && !el) {
    el = document.createElement("li");
    el.className = "typing";
    el.textContent = `${demo.peer} is typing…`;
    list.append(el);
    list.scrollTop = list.scrollHeight;
  } else if (!on && el) {
    el.remove();
  }
}

function start(me, peer) {
  demo.me = me;
  demo.peer = peer;
  demo.conversation = conversationOf(me, peer);
  $("login").hidden = true;
  $("chat").hidden = false;
  $("peer-name").textContent = peer;
  $("peer-initial").textContent = peer.slice(0, 1);
  $("me-name").textContent = me;
  document.title = `${me} → ${peer} · relaykit`;

  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const client = new RelayClient({
    url: `${scheme}//${location.host}/`,
    token: `${me}:web`,
    userId: me,
  });
  demo.client = client;
  const conn = $("conn");

  client.on("open", () => {
    conn.textContent = "connected";
    conn.className = "conn open";
    markReadIfSeen();
  });
  client.on("close", (info) => {
    conn.className = "conn";
    conn.textContent =
      info.reconnectIn === undefined
        ? `closed (${info.code} ${info.reason})`
        : `reconnecting in ${Math.ceil(info.reconnectIn / 1000)} s`;
  });
  client.on("message", (m, { own }) => {
    if (m.conversation !== demo.conversation || shown.has(m.id)) return;
    shown.add(m.id);
    const li = bubble(m.text, m.ts, own);
    li.dataset.id = m.id;
    if (own) {
      // Sent from another device of ours: no tick tracking here.
      setTicks(li, "sent");
    } else {
      showTyping(false);
      markReadIfSeen();
    }
  });
  client.on("status", (m) => {
    demo.statusLog.push(`${m.clientId}:${m.status}`);
    const li = mine.get(m.clientId);
    if (!li) return;
    if (m.id) {
      li.dataset.id = m.id;
      shown.add(m.id);
    }
    setTicks(li, m.status, m.reason);
  });
  client.on("presence", (p) => {
    if (p.user === peer) showPresence(p);
  });
  client.on("typing", (t) => {
    if (t.from !== peer) return;
    clearTimeout(typingTimer);
    showTyping(t.state === "composing");
    if (t.state === "composing") typingTimer = setTimeout(() => showTyping(false), 5000);
  });
  client.on("rejected", (e) => console.warn("relaykit refused a frame:", e.code, e.message));
  client.on("error", (e) => console.warn("relaykit:", e.code, e.message));

  client.subscribePresence([peer]);
  client.connect();
  $("text").focus();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const me = $("me").value.trim();
  const peer = $("peer").value.trim();
  if (!NAME.test(me) || !NAME.test(peer) || me === peer) {
    alert("Pick two different names made of letters, digits, _ . -");
    return;
  }
  start(me, peer);
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text || !demo.client) return;
  const out = demo.client.send(demo.peer, text);
  const li = bubble(text, Date.now(), true);
  li.dataset.clientId = out.clientId;
  mine.set(out.clientId, li);
  setTicks(li, out.status);
  input.value = "";
  demo.client.typing(demo.peer, "paused");
  lastTypingSent = 0;
});

$("text").addEventListener("input", () => {
  demo.client?.active(); // user activity: keeps us online (the SDK throttles it)
  const now = Date.now();
  if (demo.client && now - lastTypingSent > 2000) {
    lastTypingSent = now;
    demo.client.typing(demo.peer, "composing");
  }
});

window.addEventListener("focus", () => {
  focused = true;
  demo.client?.active(); // keepalive pings are not activity; focus is
  markReadIfSeen();
});
window.addEventListener("blur", () => {
  focused = false;
});
document.addEventListener("visibilitychange", markReadIfSeen);

// ?me=alice&peer=bob signs in straight away (handy for two tabs and for tests).
const params = new URLSearchParams(location.search);
if (params.get("me") && params.get("peer")) {
  $("me").value = params.get("me");
  $("peer").value = params.get("peer");
  $("login").requestSubmit();
}
