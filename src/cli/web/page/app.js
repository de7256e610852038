// tapnet web's page: the cluster from /api/state, then live from the event stream /api/events
// (the browser reconnects by itself if the stream breaks); the drawing (drawing.js) and the
// tables below it redrawn from each sample; a trace asked of /api/trace when two pods are
// picked, its hops listed as `tapnet trace` prints them and played on the drawing one by one.

import { clearPacket, drawCluster, movePacket, rate, shapeKey, updateNumbers } from "./drawing.js";

const $ = (id) => document.getElementById(id);
const svg = $("drawing");
let state = { nodes: [] };
let shape = "";
/** The pods picked on the drawing: keys "namespace/name". */
const picked = { from: undefined, to: undefined };
/** The trace shown: its hops, the hop the packet is at, and whether it plays on. */
const journey = { hops: [], at: -1, playing: false, run: 0 };

/** An HTML element with attributes and children (strings become text). */
function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) e.setAttribute(k, String(v));
  for (const k of kids) e.append(typeof k === "string" ? document.createTextNode(k) : k);
  return e;
}

const table = (head, rows) => h("table", {}, h("thead", {}, h("tr", {}, ...head.map((x) => h("th", {}, x)))),
  h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((x) => h("td", {}, String(x)))))));

const allPods = () => state.nodes.flatMap((n) => (n.pods ?? []).map((p) => ({ ...p, node: n.name, key: `${p.namespace}/${p.name}` })));

/** A new sample of the cluster: the drawing rebuilt if its shape changed, the numbers and tables always. */
function show(next) {
  state = next;
  $("cluster-error").hidden = !next.error;
  $("cluster-error").textContent = next.error ?? "";
  const pods = allPods();
  const backends = [...new Set(next.nodes.map((n) => n.backend).filter(Boolean))];
  $("summary").textContent = `${next.nodes.length} node${next.nodes.length === 1 ? "" : "s"}, ${pods.length} pod${pods.length === 1 ? "" : "s"}` +
    (backends.length ? `, ${backends.join(" and ")} backend` : "") + ` · sampled ${new Date(next.at).toLocaleTimeString()}`;
  const key = shapeKey(next);
  if (key !== shape) {
    shape = key;
    drawCluster(svg, next, picked);
    fillPodChoices(pods);
    if (journey.at >= 0) replayTo(journey.at);
  }
  updateNumbers(svg, next);
  $("tables").replaceChildren(...next.nodes.map(nodeTables));
}

/** The choices of the trace form: every pod (by its node), kept as picked. */
function fillPodChoices(pods) {
  for (const id of ["from", "to"]) {
    const sel = $(id), had = sel.value;
    sel.replaceChildren(h("option", { value: "" }, "a pod…"), ...pods.map((p) => h("option", { value: p.key }, `${p.key} (${p.ip}, ${p.node})`)));
    sel.value = pods.some((p) => p.key === had) ? had : "";
  }
}

/** One node's tables: its pods, its switch's FDB, its tunnel and counters, its drops. */
function nodeTables(n) {
  const box = h("article", { class: "node-tables", "data-node": n.name });
  if (n.error) {
    box.append(h("h3", {}, `${n.name}: its switch does not answer`), h("p", { class: "error" }, n.error));
    return box;
  }
  box.append(h("h3", {}, `${n.name}`, h("span", {}, ` ${n.address} · pods ${n.podCidr} · gateway ${n.gateway} (${n.gatewayMac}) · switch pid ${n.pid} on ${n.runtime}`)));
  box.append(h("h4", {}, "Pods"), h("p", { class: "note" }, "Each pod is a network namespace whose eth0 is one end of a TAP device; the switch holds the other end, on a port of its own."),
    table(["pod", "address", "MAC", "port", "namespace (netns)"], n.pods.map((p) => [`${p.namespace}/${p.name}`, p.ip, p.mac, p.port, p.netns])));
  const fdb = table(["MAC", "port", "device", "pod", "how", "age"], n.fdb.map((e) => [e.mac, e.port, e.device, e.pod ?? "-", e.pinned ? "pinned" : "learned", `${e.age} s`]));
  fdb.classList.add("fdb");
  box.append(h("h4", {}, `FDB: ${n.fdb.length} MAC${n.fdb.length === 1 ? "" : "s"}`),
    h("p", { class: "note" }, "The switch's forwarding table: a frame to a MAC here leaves by that port only; one to a MAC not here is flooded to every port. Pinned entries are the switch's own pods, learned ones it saw as a frame's source."),
    fdb);
  const t = n.tunnel;
  box.append(h("h4", {}, "Tunnel"), h("p", { class: "note" }, "What this switch sent to other nodes and got from them, each frame inside a UDP datagram on the underlay."),
    table(["", "frames", "bytes", "now"], [["out", t.txFrames, t.txBytes, `${rate(t.txBps)}, ${t.txPps ?? "…"} pkt/s`], ["in", t.rxFrames, t.rxBytes, `${rate(t.rxBps)}, ${t.rxPps ?? "…"} pkt/s`]]));
  box.append(h("h4", {}, "Counters"), h("p", { class: "note" }, "routed: packets into the tunnel, delivered: from it; unknown_unicast: frames flooded, their destination MAC not learned; " +
    "broadcast: frames to every port (ARP asks); icmp_sent: ICMP errors the gateway answered with; arp_replies: the gateway's ARP answers; " +
    "flows_active: connections tracked now; translated: packets whose addresses a Service rewrote."),
    table(Object.keys(n.counters), [Object.values(n.counters)]));
  box.append(h("h4", {}, n.drops.length ? "Drops" : "Drops: none"), h("p", { class: "note" }, "Frames the switch threw away, and why: every drop is counted by its reason."),
    ...(n.drops.length ? [table(["where", "reason", "frames"], n.drops.map((d) => [d.where, d.reason, d.count]))] : []));
  return box;
}

/** The live stream: the browser reopens it by itself when it breaks (the server's `retry`). */
function connect() {
  const es = new EventSource("/api/events");
  const conn = $("conn");
  es.addEventListener("open", () => { conn.dataset.state = "live"; conn.textContent = "live"; });
  es.addEventListener("state", (e) => show(JSON.parse(e.data)));
  es.addEventListener("error", () => { conn.dataset.state = "lost"; conn.textContent = "connection lost: retrying…"; });
}

/** A click on the drawing: a pod picked as the sender, then as the receiver (which starts the trace). */
function onPick(key) {
  if (!picked.from || picked.to) {
    picked.from = key;
    picked.to = undefined;
    $("to").value = "";
  } else if (key !== picked.from) {
    picked.to = key;
  }
  $("from").value = picked.from ?? "";
  $("to").value = picked.to ?? "";
  for (const g of svg.querySelectorAll("[data-pod]")) {
    g.classList.toggle("from", g.dataset.pod === picked.from);
    g.classList.toggle("to", g.dataset.pod === picked.to);
  }
  if (picked.to) trace();
  else setStatus("idle", `From ${picked.from}: now click the pod to send to.`);
}

function setStatus(s, text) {
  $("trace-status").dataset.state = s;
  $("trace-status").textContent = text;
}

/** Asks the server for a trace of what the form says, and plays it. */
async function trace() {
  const from = $("from").value, to = $("to-ip").value.trim() || $("to").value, proto = $("proto").value;
  if (!from || !to) return setStatus("error", "Pick a pod to send from and a pod (or an address) to send to.");
  const body = { from, to, proto, ...(proto === "icmp" ? {} : { port: Number($("port").value) }) };
  const run = ++journey.run;
  journey.playing = false;
  $("go").disabled = true;
  setStatus("running", `Tracing ${from} → ${to}: arming every switch, sending the probe, reading what they recorded…`);
  try {
    const res = await fetch("/api/trace", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const answer = await res.json();
    if (run !== journey.run) return;
    if (!res.ok) return setStatus("error", answer.error ?? `the server answered ${res.status}`);
    showJourney(answer);
  } catch (e) {
    setStatus("error", `no answer from tapnet web: ${e.message}`);
  } finally {
    $("go").disabled = false;
  }
}

/** A trace's hops in the panel, as the terminal prints them, and the packet set moving. */
function showJourney(t) {
  const what = t.proto === "icmp" ? `ICMP echo, ${t.count} ping${t.count === 1 ? "" : "s"}` : `${t.proto.toUpperCase()} to port ${t.port}`;
  const to = t.to.pod ? `${t.to.pod} (${t.to.ip}, ${t.to.node})` : t.to.ip;
  const lost = t.lost.length ? ` Some records were lost (${t.lost.map((x) => `${x.node}: ${x.records}`).join(", ")}): the switch's ring was full.` : "";
  setStatus(t.hops.length ? "done" : "empty", `${t.from.pod} (${t.from.ip}, ${t.from.node}) → ${to}: ${what}. ${t.probe.split("\n").filter((l) => /received|connected|refused|sent/.test(l)).join(" ") || t.probe}. ` +
    (t.hops.length ? `${t.hops.length} hops.` : "No switch saw the packet.") + lost);
  journey.hops = t.hops;
  $("hops").replaceChildren(...t.hops.map((hop, i) => {
    const d = h("div", { class: "hop", "data-i": i, "data-node": hop.node, "data-stage": hop.stage }, h("pre"));
    d.addEventListener("click", () => { journey.playing = false; replayTo(i); });
    return d;
  }));
  fillHops();
  $("player").hidden = t.hops.length === 0;
  play(0);
}

/** Each hop's lines, with the byte view at its first hop or (the box ticked) at every hop whose bytes changed. */
function fillHops() {
  const bytes = $("bytes").checked;
  for (const d of $("hops").children) {
    const hop = journey.hops[Number(d.dataset.i)];
    d.firstChild.replaceChildren(...sgr((bytes ? hop.byteLines : hop.lines).join("\n")));
  }
}

/** Text with a terminal's colour escapes (SGR: ESC [ n m) as spans whose classes name the codes. */
function sgr(text) {
  const out = [];
  let cls = "";
  text.split(/\x1b\[([0-9;]*)m/).forEach((part, k) => {
    if (k % 2 === 1) cls = part === "" || part === "0" ? "" : part.split(";").map((c) => `sgr${c}`).join(" ");
    else if (part) out.push(cls ? h("span", { class: cls }, part) : document.createTextNode(part));
  });
  return out;
}

function mark(i) {
  journey.at = i;
  for (const d of $("hops").children) d.classList.toggle("current", Number(d.dataset.i) === i);
  // The hop in view inside the list only: the page itself stays where the reader has it.
  const box = $("hops"), d = box.children[i];
  if (d && (d.offsetTop < box.scrollTop || d.offsetTop + d.offsetHeight > box.scrollTop + box.clientHeight)) box.scrollTop = d.offsetTop - 6;
  const hop = journey.hops[i];
  $("where").textContent = hop ? `hop ${i + 1} of ${journey.hops.length}: ${hop.node}, ${hop.stage}` : "";
}

/** Plays the hops from `i` on, the packet moving from each to the next. */
async function play(i) {
  const run = journey.run;
  journey.playing = true;
  delete svg.dataset.packetAt;
  if (i === 0) clearPacket(svg);
  else replayTo(i - 1);
  for (let k = i; k < journey.hops.length && journey.playing && run === journey.run; k++) {
    mark(k);
    await movePacket(svg, journey.hops, k, false);
    svg.dataset.packetAt = k; // where the packet came to rest (the browser test waits for it)
    await new Promise((r) => setTimeout(r, 350));
  }
  if (run === journey.run) journey.playing = false;
}

/** The packet at hop i at once, the path so far drawn. */
function replayTo(i) {
  clearPacket(svg);
  for (let k = 0; k <= i; k++) movePacket(svg, journey.hops, k, true);
  mark(i);
  svg.dataset.packetAt = i;
}

svg.addEventListener("click", (e) => {
  const g = e.target.closest("[data-pod]");
  if (g) onPick(g.dataset.pod);
});
svg.addEventListener("keydown", (e) => {
  const g = e.target.closest?.("[data-pod]");
  if (g && (e.key === "Enter" || e.key === " ")) onPick(g.dataset.pod);
});
$("trace-form").addEventListener("submit", (e) => {
  e.preventDefault();
  picked.from = $("from").value || undefined;
  picked.to = $("to").value || undefined;
  trace();
});
$("proto").addEventListener("change", () => {
  $("port").disabled = $("proto").value === "icmp";
  if (!$("port").disabled && !$("port").value) $("port").value = "80";
});
$("back").addEventListener("click", () => { journey.playing = false; if (journey.at > 0) replayTo(journey.at - 1); });
$("next").addEventListener("click", () => {
  journey.playing = false;
  if (journey.at < journey.hops.length - 1) { mark(journey.at + 1); movePacket(svg, journey.hops, journey.at, false); }
});
$("bytes").addEventListener("change", fillHops);
$("play").addEventListener("click", () => { journey.run++; play(0); });

fetch("/api/state").then((r) => r.json()).then(show).catch(() => {}).finally(connect);
