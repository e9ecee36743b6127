/**
 * The web console at `/` (docs/api.md): one self-contained page, every asset inline (it works
 * air-gapped), polling the JSON API every 5 s. Region × region heat map colored by loss, with RTT
 * against the pair's own baseline, a legend and the values in the cells; a click opens the pair:
 * RTT mean with its min-max band and loss over the history, which agent probed which address
 * (and which links are in error state), the flow mesh's per-flow loss (which source ports lose,
 * lossy flows highlighted, the udp and tcp connect summaries), and the latest path traces of the
 * pair, hop by hop, each titled with its kind and ports, a target's ICMP trace next to its flows'.
 * Fields a server before 0.6 does not send are shown as absent, never as an error.
 * Above the heat map, "What is wrong now": the localiser's incidents (lib/server/console_incidents.ts).
 * Targets of every check kind (http, tcp, dns, grpc) with httpstat-style phase bars; agents. Text goes in through textContent only.
 */

import { INCIDENTS_CSS, INCIDENTS_HTML, INCIDENTS_JS } from "./console_incidents.ts";
import { CHECK_KINDS, SERVER_KINDS } from "./kinds.ts";

/** Bar colours of the check kinds' phases; a phase a new kind brings without one is grey. */
const PHASE_COLOURS: Record<string, string> = { resolve: "#8ab4f8", connect: "#81c995", tls: "#fdd663", processing: "#f28b82", transfer: "#c58af9", query: "#78d9ec", check: "#fcad70" };
/** Every phase of every check kind, in registry order (the legend, and a CSS class each). */
const PHASES = [...new Set(CHECK_KINDS.flatMap((k) => SERVER_KINDS[k].spec.phases))];
const PHASE_CSS = PHASES.map((p) => `.p-${p}{background:${PHASE_COLOURS[p] ?? "#bbb"}}`).join("");
const PHASE_LEGEND = PHASES.map((p) => `<span><i class="p-${p}"></i>${p}</span>`).join("");

export const CONSOLE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ProberMesh</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}
header{background:#1d2433;color:#fff;padding:.6em 1.2em;display:flex;gap:1em;align-items:baseline}
header h1{font-size:1.2em;margin:0}#updated{color:#aab;font-size:.85em}
main{padding:1em 1.2em;display:grid;gap:1.2em}section{background:#fff;border:1px solid #dde;border-radius:6px;padding:.8em 1em;overflow:auto}
h2{font-size:1.05em;margin:.2em 0 .6em}table{border-collapse:collapse}th,td{padding:.25em .5em;border:1px solid #e3e5ea;text-align:left;white-space:nowrap}
#heatmap td.cell{cursor:pointer;text-align:center;min-width:4.5em;font-variant-numeric:tabular-nums}#heatmap td.cell small{display:block;color:#333}
.ok{background:#c8ecd0}.warn{background:#fbe7a8}.bad{background:#f5b5b0}.none{background:#f1f2f4;color:#999}.self{background:#fff}
.slow{outline:2px solid #7b3fe4;outline-offset:-2px}.erring{box-shadow:inset 0 0 0 2px #b3261e}.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:1em;height:1em;vertical-align:middle;margin-right:.3em;border:1px solid #ccc}
.bar{display:flex;height:12px;width:240px;background:#eee}.bar span{display:block;height:100%}
${PHASE_CSS}
.lossy td{background:#f5b5b0;font-weight:600}.traces{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start;margin-bottom:1em}.trace-title{font-weight:600;margin:.3em 0}
.dead{color:#b3261e;font-weight:600}.alive{color:#137333}#pair[hidden]{display:none}svg{background:#fafbfc;border:1px solid #e3e5ea}
${INCIDENTS_CSS}</style></head>
<body><header><h1>ProberMesh</h1><span id="updated">loading…</span></header>
<main>
${INCIDENTS_HTML}
<section id="mesh"><h2>Mesh: rows are source regions, columns target regions (last window)</h2>
<p class="legend"><span><i class="ok"></i>no loss</span><span><i class="warn"></i>loss up to 5 %</span><span><i class="bad"></i>loss over 5 %</span><span><i class="none"></i>no data</span><span><i class="slow"></i>RTT over 1.5 × the pair's baseline</span><span><i class="erring"></i>links in error state (re-probed, path traced)</span><span><i class="cell evidence"></i>evidence of the incident clicked above</span></p>
<div id="heatmap"></div></section>
<section id="pair" hidden><h2 id="pair-title"></h2><svg id="pair-chart" width="720" height="220"></svg>
<p class="legend"><span><i style="background:#1a73e8"></i>RTT mean</span><span><i style="background:#c6dafc"></i>RTT min–max</span><span><i style="background:#d93025"></i>loss</span></p>
<table id="links"></table>
<h3>Flows (udp and tcp connect probes; one source port, one 5-tuple, one ECMP path each)</h3><p id="flow-summary"></p><table id="flows"></table>
<h3>Path traces (latest first; icmp when a target entered error state, udp / tcp: the lossy flow's own 5-tuple, Paris traceroute)</h3><div id="paths"><p>none yet</p></div></section>
<section id="targets"><h2>Targets: ${CHECK_KINDS.join(", ")} (last window)</h2><p class="legend">${PHASE_LEGEND}</p><table id="targets-table"></table></section>
<section id="agents"><h2>Agents</h2><table id="agents-table"></table></section>
</main>
<script>
const el = (tag, attrs = {}, ...kids) => { const e = document.createElement(tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); for (const k of kids) e.append(k); return e; };
const ms = (s) => s === null || s === undefined ? "–" : (s * 1000).toFixed(s < 0.01 ? 3 : 1) + " ms";
const pct = (r) => typeof r !== "number" ? "–" : (r * 100).toFixed(r > 0 && r < 0.01 ? 2 : 1) + " %";
const getJson = async (p) => { const r = await fetch(p); if (!r.ok) throw new Error(p + ": " + r.status); return r.json(); };
function row(cells, head) { const tr = el("tr"); for (const c of cells) tr.append(el(head ? "th" : "td", {}, c)); return tr; }
let openPair = null;
${INCIDENTS_JS}

function renderMesh(m) {
  const byKey = new Map(m.pairs.map((p) => [p.source_region + "\\u0000" + p.target_region, p]));
  const t = el("table"); const frag = document.createDocumentFragment();
  frag.append(row(["source \\\\ target", ...m.regions], true));
  for (const s of m.regions) {
    const tr = el("tr", {}, el("th", {}, s));
    for (const d of m.regions) {
      const p = byKey.get(s + "\\u0000" + d);
      if (s === d) { tr.append(el("td", { class: "cell self" }, "")); continue; }
      if (!p) {
        // No ICMP data (ICMP blocked?): the pair may still have flow data and traces.
        const td = el("td", { class: "cell none", "data-source": s, "data-target": d }, "–");
        td.addEventListener("click", () => { openPair = [s, d]; loadPair(); });
        tr.append(td); continue;
      }
      const cls = p.loss_ratio === 0 ? "ok" : p.loss_ratio <= 0.05 ? "warn" : "bad";
      const slow = p.rtt_mean_seconds !== null && p.rtt_baseline_seconds !== null && p.rtt_mean_seconds > 1.5 * p.rtt_baseline_seconds;
      const erring = p.error_state_links > 0;
      const td = el("td", { class: "cell " + cls + (slow ? " slow" : "") + (erring ? " erring" : ""), "data-source": s, "data-target": d, title: s + " → " + d + ": loss " + pct(p.loss_ratio) + (p.inferred ? " (inferred: every agent of " + s + " is silent and unreachable)" : ", RTT " + ms(p.rtt_mean_seconds) + " (baseline " + ms(p.rtt_baseline_seconds) + ")") + (erring ? ", " + p.error_state_links + " link(s) in error state" : "") },
        pct(p.loss_ratio), el("small", {}, ms(p.rtt_mean_seconds)));
      td.addEventListener("click", () => { openPair = [s, d]; loadPair(); });
      tr.append(td);
    }
    frag.append(tr);
  }
  t.append(frag); document.getElementById("heatmap").replaceChildren(t);
}

function renderChart(svg, hist) {
  const W = 720, H = 220, pad = 40, ns = "http://www.w3.org/2000/svg";
  const mk = (tag, a) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(a)) e.setAttribute(k, v); return e; };
  svg.replaceChildren();
  const pts = hist.filter((p) => p.rtt_mean_seconds !== null);
  const t0 = Date.parse(hist[0].time), t1 = Math.max(t0 + 1, Date.parse(hist[hist.length - 1].time));
  const maxRtt = Math.max(1e-6, ...pts.map((p) => p.rtt_max_seconds));
  const x = (t) => pad + ((Date.parse(t) - t0) / (t1 - t0)) * (W - 2 * pad), y = (v) => H - pad - (v / maxRtt) * (H - 2 * pad);
  for (const p of hist) if (p.loss_ratio > 0) svg.append(mk("rect", { class: "loss", x: x(p.time) - 2, y: H - pad - p.loss_ratio * (H - 2 * pad), width: 4, height: p.loss_ratio * (H - 2 * pad), fill: "#d93025" }));
  if (pts.length) {
    const band = pts.map((p) => x(p.time) + "," + y(p.rtt_max_seconds)).concat(pts.slice().reverse().map((p) => x(p.time) + "," + y(p.rtt_min_seconds))).join(" ");
    svg.append(mk("polygon", { points: band, fill: "#c6dafc" }));
    svg.append(mk("polyline", { class: "rtt", points: pts.map((p) => x(p.time) + "," + y(p.rtt_mean_seconds)).join(" "), fill: "none", stroke: "#1a73e8", "stroke-width": 2 }));
  }
  const label = mk("text", { x: 4, y: pad - 8, "font-size": 11 }); label.textContent = "RTT up to " + ms(maxRtt) + " · loss 0–100 % · last " + hist.length + " windows"; svg.append(label);
}

async function loadPair() {
  if (!openPair) return;
  const [s, d] = openPair; const sec = document.getElementById("pair"); sec.hidden = false;
  document.getElementById("pair-title").textContent = s + " → " + d;
  try {
    const p = await getJson("/api/v1/pair?source_region=" + encodeURIComponent(s) + "&target_region=" + encodeURIComponent(d));
    const hist = Array.isArray(p.history) ? p.history : [];
    if (hist.length) renderChart(document.getElementById("pair-chart"), hist); else document.getElementById("pair-chart").replaceChildren();
    const t = document.getElementById("links"); t.replaceChildren(row(["agent", "target address", "loss", "RTT mean", "jitter", "state"], true));
    for (const l of Array.isArray(p.links) ? p.links : []) t.append(row([l.agent_ip, l.address, pct(l.loss_ratio), ms(l.rtt_mean_seconds), ms(l.jitter_seconds), l.error_state ? "error state" : "ok"]));
    if (!hist.length) t.append(row(["no ICMP data for this pair"]));
    renderFlows(p);
  } catch (e) {
    document.getElementById("links").replaceChildren(row(["no data for this pair yet"]));
    document.getElementById("flow-summary").textContent = ""; document.getElementById("flows").replaceChildren();
  }
  try { renderPaths((await getJson("/api/v1/paths?source_region=" + encodeURIComponent(s) + "&target_region=" + encodeURIComponent(d))).paths); }
  catch (e) { document.getElementById("paths").replaceChildren(el("p", {}, "path traces unavailable: " + e.message)); }
}

/** The pair's udp / tcp connect summaries and the flows that lost probes (which source ports lose), lossy ones highlighted. */
function renderFlows(p) {
  const sum = document.getElementById("flow-summary"), t = document.getElementById("flows");
  const flows = Array.isArray(p.flows) ? p.flows : [];
  const parts = [];
  const n = (v) => typeof v === "number" ? String(v) : "–";
  if (p.udp) parts.push("udp: loss " + pct(p.udp.loss_ratio) + " (" + n(p.udp.received) + " of " + n(p.udp.sent) + " answered), RTT " + ms(p.udp.rtt_mean_seconds) + ", jitter " + ms(p.udp.jitter_seconds) + ", lossy flows " + n(p.udp.flows_lossy) + (p.udp.inferred ? " (inferred: the source region is cut off)" : ""));
  if (p.tcp_connect) parts.push("tcp connect: loss " + pct(p.tcp_connect.loss_ratio) + " (" + n(p.tcp_connect.established) + " of " + n(p.tcp_connect.attempted) + " established by the first SYN), lossy flows " + n(p.tcp_connect.flows_lossy));
  t.replaceChildren();
  if (!parts.length && !flows.length) { sum.textContent = "no flow data for this pair (no udp or tcp flow probes in the last window)"; return; }
  const losing = flows.filter((f) => f.lossy || f.loss_ratio > 0);
  parts.push(losing.length ? losing.length + " of " + flows.length + " flows lost probes" + (losing.length > 200 ? " (the first 200 shown)" : "") : "no flow lost probes (" + flows.length + " flows)");
  sum.textContent = parts.join(" · ");
  if (!losing.length) return;
  t.append(row(["kind", "agent", "target", "source port", "sent", "received", "loss", "lossy"], true));
  for (const f of losing.slice(0, 200)) {
    const tr = row([String(f.kind ?? "–"), String(f.agent_ip ?? "–"), String(f.address ?? "–"), n(f.source_port), n(f.sent), n(f.received), pct(f.loss_ratio), f.lossy ? "lossy" : ""]);
    if (f.lossy) tr.className = "lossy";
    t.append(tr);
  }
}

/** A trace's title: its kind, and a flow's source port (kind absent: a server before 0.6, so icmp). */
function traceTitle(p) {
  const kind = p.kind || "icmp";
  return kind === "icmp" ? "icmp: " + p.agent_ip + " → " + p.target : kind + " flow, source port " + p.source_port + ": " + p.agent_ip + ":" + p.source_port + " → " + p.target;
}

/** The pair's traces, one row per (agent, target host): its ICMP trace first, its flows' traces next to it. */
function renderPaths(paths) {
  const box = document.getElementById("paths");
  if (!Array.isArray(paths) || !paths.length) { box.replaceChildren(el("p", {}, "none yet")); return; }
  // The target's host: "[v6]:port" and "v4:port" lose the port, a bare address stays.
  const host = (p) => { const t = String(p.target); if (p.resolved_ip) return p.resolved_ip; if (t.startsWith("[")) return t.slice(1, t.indexOf("]")); return t.split(":").length === 2 ? t.split(":")[0] : t; };
  const groups = new Map();
  for (const p of paths) { const k = p.agent_ip + " " + host(p); if (!groups.has(k)) groups.set(k, []); groups.get(k).push(p); }
  const rank = (p) => (p.kind || "icmp") === "icmp" ? 0 : 1;
  box.replaceChildren(...[...groups.values()].map((g) => el("div", { class: "traces" }, ...g.sort((a, b) => rank(a) - rank(b)).map((p) => {
    const t = el("table", { class: "path" });
    t.append(row(["hop", "address", "loss", "sent", "received", "RTT mean", "min", "max", "stddev"], true));
    for (const h of Array.isArray(p.hops) ? p.hops : []) t.append(row([String(h.ttl), h.address || "???", h.loss_ratio === null ? "–" : pct(h.loss_ratio), String(h.sent), String(h.received), ms(h.rtt_mean_seconds), ms(h.rtt_min_seconds), ms(h.rtt_max_seconds), ms(h.rtt_stddev_seconds)]));
    const title = el("p", { class: "trace-title", "data-kind": p.kind || "icmp", "data-source-port": String(p.source_port || 0) }, traceTitle(p));
    const head = el("p", {}, p.agent_ip + " at " + new Date(p.time).toLocaleString() + " (" + p.reason + ", " + (p.reached ? "reached" : "did not reach the target") + (p.error ? ", " + p.error : "") + ")");
    return el("div", { class: "trace" }, title, head, t);
  }))));
}

function renderTargets(h) {
  const t = document.getElementById("targets-table"); t.replaceChildren(row(["kind", "source", "target", "status", "phases", "total", "certificate", "failures"], true));
  for (const x of h.targets) {
    const bar = el("div", { class: "bar" }); const ph = x.phases_seconds;
    const total = ph ? Object.values(ph).reduce((a, b) => a + b, 0) : 0;
    if (ph) for (const [k, v] of Object.entries(ph)) bar.append(el("span", { class: "p-" + k, style: "width:" + (total ? (v / total) * 100 : 0) + "%", title: k + " " + ms(v) }));
    const failed = Object.entries(x.failed).map(([r, n]) => r + " × " + n).join(", ") || "none";
    const status = x.kind === "http" ? String(x.status_code) : Object.keys(x.failed).length === 0 ? "ok" : ph ? "partly failed" : "failed";
    t.append(row([x.kind, x.source_region, x.target_addr, status, bar, ph ? ms(total) : "failed", x.cert_expiry_days === null ? "–" : x.cert_expiry_days.toFixed(0) + " days", failed]));
  }
}

function renderAgents(a) {
  const t = document.getElementById("agents-table"); t.replaceChildren(row(["region", "ip", "version", "host", "last seen", "state"], true));
  for (const x of a.agents) { const tr = row([x.region, x.ip, x.version, x.hostname, new Date(x.last_seen).toLocaleTimeString()]); tr.append(el("td", { class: x.alive ? "alive" : "dead" }, x.alive ? "alive" : "dead")); t.append(tr); }
}

async function loadAll() {
  loadIncidents(); // on its own: a server without incidents (before 0.7) still shows the rest
  try {
    const [m, h, a] = await Promise.all([getJson("/api/v1/mesh"), getJson("/api/v1/targets"), getJson("/api/v1/agents")]);
    renderMesh(m); markEvidence(); renderTargets(h); renderAgents(a); await loadPair();
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) { document.getElementById("updated").textContent = "update failed: " + e.message; }
}
loadAll(); setInterval(loadAll, 5000);
</script></body></html>`;
