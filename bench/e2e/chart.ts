/** The SVG chart the e2e bench writes: CPU per message and p99 of each server, side by side. */

import type { ServerKind } from "./protocol.js";
import type { RoundResult as KindResult } from "./round.js";

const LABELS: Record<ServerKind, string> = {
  relaykit: "relaykit (quick start)",
  "relaykit-demo": "relaykit (npm run demo)",
  "raw-ws": "raw ws, corked",
  socketio: "Socket.IO 4.8 (ws only)",
  "relaykit-redis": "relaykit on Redis",
};
const COLORS: Record<ServerKind, string> = {
  relaykit: "#2563eb",
  "relaykit-demo": "#60a5fa",
  "raw-ws": "#6b7280",
  socketio: "#f59e0b",
  "relaykit-redis": "#dc2626",
};

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

/** Two horizontal bar panels (CPU us per message, p99 ms) for the servers in `results`. */
export function renderChart(
  results: Map<ServerKind, KindResult>,
  title = "200 users x window 4",
): string {
  const kinds = [...results.keys()];
  const rowH = 26;
  const panelH = kinds.length * rowH + 40;
  const width = 720;
  const labelW = 190;
  const barW = width - labelW - 90;
  const panel = (y0: number, heading: string, unit: string, get: (r: KindResult) => number) => {
    const max = Math.max(...kinds.map((k) => get(results.get(k) as KindResult)), 1e-9);
    let out = `<text x="10" y="${y0 + 18}" font-weight="bold">${esc(heading)}</text>`;
    kinds.forEach((k, i) => {
      const v = get(results.get(k) as KindResult);
      const y = y0 + 30 + i * rowH;
      const w = Math.max(1, (v / max) * barW);
      out += `<text x="${labelW - 8}" y="${y + 15}" text-anchor="end">${esc(LABELS[k])}</text>`;
      out += `<rect x="${labelW}" y="${y + 2}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${COLORS[k]}"/>`;
      out += `<text x="${(labelW + w + 6).toFixed(1)}" y="${y + 15}">${Number(v.toPrecision(3))} ${unit}</text>`;
    });
    return out;
  };
  const height = 40 + 2 * panelH;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">
<title>relaykit vs Socket.IO vs raw ws: server CPU per relayed message and p99 (${esc(title)})</title>
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="22" font-size="15" font-weight="bold">relaykit e2e relay, ${esc(title)} (npm run bench -- e2e)</text>
${panel(30, "Server CPU per relayed message (lower is better)", "µs", (r) => r.cpuUsPerMsg)}
${panel(30 + panelH, "p99 send to ✓✓ (lower is better)", "ms", (r) => r.p99Ms)}
</svg>
`;
}
