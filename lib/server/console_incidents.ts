/**
 * The console's "What is wrong now" panel (docs/api.md "Console"), above the heat map: one card
 * per active incident of GET /api/v1/incidents (scope badge titled with its meaning from SCOPES,
 * subject, summary, since when, the evidence), "Nothing wrong" when there is none, a line per
 * incident ended in the last hour, and the loss no incident explains (scattered or widespread).
 * A click on a card marks its evidence cells in the heat map (class `evidence`); a click on one
 * of its cell chips marks that cell only and opens the pair, as a click on the cell does (so does
 * a card with a single cell). A server before 0.7 answers 404: the panel says so, the rest works.
 *
 * Three fragments of lib/server/console.ts's page: styles, markup and script. The script uses the
 * console's el(), pct(), openPair and loadPair(); the console calls loadIncidents() on each poll
 * and markEvidence() after each heat map render. Text goes in through textContent only.
 */
import { SCOPES } from "../localiser/model.ts";

/** Styles of the panel and of marked heat-map cells. */
export const INCIDENTS_CSS = `
#incidents .incident{border:1px solid #e3e5ea;border-left:4px solid #b3261e;border-radius:4px;padding:.4em .7em;margin:.4em 0;cursor:pointer}
#incidents .incident.selected{background:#eef3fd;border-color:#0b57d0}
#incidents .inc-head{display:flex;gap:.7em;align-items:baseline;flex-wrap:wrap}#incidents .inc-since,#incidents .inc-evidence{color:#555;font-size:.9em}
#incidents p{margin:.2em 0}.scope{display:inline-block;padding:0 .5em;border-radius:9px;background:#1d2433;color:#fff;font-size:.85em;cursor:help}
.scope-agent,.scope-target{background:#7b3fe4}.scope-hop{background:#b06000}.scope-region_pair{background:#0b57d0}
.chip{font:inherit;font-size:.85em;margin:.2em .3em 0 0;padding:0 .5em;border:1px solid #aab;border-radius:9px;background:#fff;cursor:pointer}
.all-clear{color:#137333;font-weight:600}#incidents-note{color:#b06000}#incidents-recent{color:#555;margin:.3em 0 0;padding-left:1.2em}
#heatmap td.cell.evidence,.legend i.evidence{border:3px dashed #0b57d0}
`;

/** The panel's section. */
export const INCIDENTS_HTML = `<section id="incidents"><h2>What is wrong now</h2>
<div id="incidents-active"><p>loading…</p></div><p id="incidents-note"></p><ul id="incidents-recent"></ul></section>`;

/** The panel's script (a part of the console's one script). */
export const INCIDENTS_JS = `
/** Each scope's meaning (lib/localiser/model.ts SCOPES), the badges' titles. */
const SCOPE_TEXT = ${JSON.stringify(SCOPES).replace(/</g, "\\u003c")};
/** The last answer of /api/v1/incidents (null: none yet, or the server has none). */
let incidentsData = null;
/** The evidence marked in the heat map: {id, one (a single chip's cell), cells: [[source, target]]}, or null. */
let marked = null;

const ago = (t) => { const s = Math.max(0, (Date.now() - Date.parse(t)) / 1000); return s < 90 ? Math.round(s) + " s ago" : s < 5400 ? Math.round(s / 60) + " min ago" : (s / 3600).toFixed(1) + " h ago"; };
const when = (t) => new Date(t).toLocaleString();
const cellsOf = (i) => (Array.isArray(i.evidence && i.evidence.cells) ? i.evidence.cells : []).map((c) => [c.source_region, c.target_region]);

/** Marks the selected incident's cells in the heat map and its card (after each render of either). */
function markEvidence() {
  for (const td of document.querySelectorAll("#heatmap td.evidence")) td.classList.remove("evidence");
  for (const c of document.querySelectorAll("#incidents .incident.selected")) c.classList.remove("selected");
  if (!marked) return;
  const want = new Set(marked.cells.map((c) => JSON.stringify(c)));
  for (const td of document.querySelectorAll("#heatmap td.cell[data-source]")) if (want.has(JSON.stringify([td.dataset.source, td.dataset.target]))) td.classList.add("evidence");
  for (const c of document.querySelectorAll("#incidents .incident")) if (c.dataset.id === marked.id) c.classList.add("selected");
}

/** A click on an incident (all its cells; again: unmark) or on one of its cells; one cell opens its pair. */
function selectIncident(id, cell) {
  const i = incidentsData && incidentsData.active.find((x) => x.id === id);
  if (!i) return;
  if (!cell && marked && marked.id === id && !marked.one) { marked = null; markEvidence(); return; }
  marked = { id, one: !!cell, cells: cell ? [cell] : cellsOf(i) };
  markEvidence();
  if (marked.cells.length === 1) { openPair = marked.cells[0]; loadPair(); }
}

function incidentCard(i) {
  const e = i.evidence || {};
  const num = (v) => typeof v === "number" ? String(v) : "–";
  const ev = [num(e.lossy_links) + " of " + num(e.links) + " links lossy", "loss " + pct(e.loss_ratio), "confidence " + (typeof e.confidence === "number" ? e.confidence.toFixed(2) : "–"), "direction " + (e.direction || "unknown")];
  if (typeof e.egress_loss_ratio === "number" || typeof e.ingress_loss_ratio === "number") ev.push("one-way loss out " + pct(e.egress_loss_ratio) + ", in " + pct(e.ingress_loss_ratio));
  if (e.role) ev.push("as " + (e.role === "both" ? "prober and target" : e.role));
  if (e.starved) ev.push("starved: " + e.starved.rounds_late + " of " + e.starved.rounds_due + " rounds late, " + e.starved.loopback_received + " of " + e.starved.loopback_sent + " loopback echoes back");
  if (e.hop) ev.push("hop: " + e.hop.votes + " votes of " + e.hop.traced_links + " traced lossy links, TTL " + e.hop.ttl + ", next " + (e.hop.next || "???"));
  const card = el("div", { class: "incident", "data-id": i.id, "data-scope": i.scope, "data-subject": i.subject, role: "button", tabindex: "0" },
    el("div", { class: "inc-head" }, el("span", { class: "scope scope-" + i.scope, title: SCOPE_TEXT[i.scope] || "" }, i.scope), el("strong", { class: "inc-subject" }, i.subject),
      el("span", { class: "inc-since" }, "since " + ago(i.started) + " (" + when(i.started) + ")")),
    el("p", { class: "inc-summary" }, i.summary), el("p", { class: "inc-evidence" }, ev.join(" · ")));
  if (e.ambiguity) card.append(el("p", { class: "inc-ambiguity" }, "cannot tell apart: " + e.ambiguity));
  const cells = cellsOf(i), chips = el("div", { class: "chips" });
  for (const c of cells.slice(0, 24)) {
    const b = el("button", { class: "chip", "data-source": c[0], "data-target": c[1], title: "mark this cell and open the pair" }, c[0] + " → " + c[1]);
    b.addEventListener("click", (ev) => { ev.stopPropagation(); selectIncident(i.id, c); });
    chips.append(b);
  }
  if (cells.length > 24) chips.append(el("span", {}, " and " + (cells.length - 24) + " more cells (a click on the incident marks them all)"));
  card.append(chips);
  card.addEventListener("click", () => selectIncident(i.id));
  card.addEventListener("keydown", (ev) => { if (ev.key === "Enter") selectIncident(i.id); });
  return card;
}

function renderIncidents(j) {
  incidentsData = { active: Array.isArray(j.active) ? j.active : [], recent: Array.isArray(j.recent) ? j.recent : [] };
  const box = document.getElementById("incidents-active"), note = document.getElementById("incidents-note"), recent = document.getElementById("incidents-recent");
  const act = incidentsData.active;
  if (act.length) box.replaceChildren(...act.map(incidentCard));
  else box.replaceChildren(el("p", { class: "all-clear" }, j.window_end ? "Nothing wrong: no active incident (last window " + new Date(j.window_end).toLocaleTimeString() + ")" : "Nothing wrong so far: no window analysed yet"));
  const u = j.unexplained;
  note.textContent = u && u.widespread ? "widespread loss: more than half the regions look lossy at once, so no single agent, region or pair is blamed (" + u.lossy_links + " lossy links)"
    : u && u.lossy_links > 0 ? "scattered loss: " + u.lossy_links + " link" + (u.lossy_links === 1 ? "" : "s") + ", no common cause" : "";
  const hourAgo = Date.now() - 3600e3;
  const ended = incidentsData.recent.filter((i) => i.ended && Date.parse(i.ended) >= hourAgo);
  recent.replaceChildren(...(ended.length ? [el("li", { class: "recent-title" }, "recently ended (last hour):")] : []),
    ...ended.map((i) => el("li", { class: "recent", "data-scope": i.scope, "data-subject": i.subject }, i.scope + " " + i.subject + ": " + when(i.started) + " – " + when(i.ended))));
  // The marked incident follows its newest evidence, and is unmarked once it ended.
  if (marked) { const i = act.find((x) => x.id === marked.id); if (!i) marked = null; else if (!marked.one) marked.cells = cellsOf(i); }
  markEvidence();
}

/** Polled with the rest of the console; a failure here never stops the other views. */
async function loadIncidents() {
  const box = document.getElementById("incidents-active");
  const say = (text) => { incidentsData = null; marked = null; markEvidence(); box.replaceChildren(el("p", {}, text)); document.getElementById("incidents-note").textContent = ""; document.getElementById("incidents-recent").replaceChildren(); };
  try {
    const r = await fetch("/api/v1/incidents");
    if (r.status === 404) return say("not available from this server (no /api/v1/incidents: a server before 0.7)");
    if (!r.ok) throw new Error("HTTP " + r.status);
    renderIncidents(await r.json());
  } catch (e) { say("incidents unavailable: " + e.message); }
}
`;
