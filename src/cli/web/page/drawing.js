// The cluster drawn in SVG, and a traced packet moved along it (tapnet web's page).
//
// Layout: a column per node. At its top the node's switch (with its gateway port tapnet0),
// below it a line (the TAP links) with a branch to each pod, labelled with the switch port.
// Between the switches the tunnel: a straight pipe between neighbours, an arc over the columns
// between nodes further apart. The drawing is rebuilt only when what it shows changes (a pod
// added, a node gone); the numbers on it (rates, drops) are updated in place, so a click is
// never lost to a redraw.
//
// A traced hop is a place on the drawing: a pod's end of its TAP link (read, port-out), the
// tunnel's mouth (tunnel-out), or the switch (every other stage). The packet moves from place to
// place along the lines: up the TAP link to the switch, through the tunnel to the other switch,
// down to the pod.

const NS = "http://www.w3.org/2000/svg";
const COL = 330, GAP = 210, SW_H = 74, SW_DY = 50, POD_DY = 152, POD_H = 62, POD_STEP = 76, POD_X = 64, POD_W = 236;

/** The top of the node boxes: room above them for the arcs of tunnels between nodes that are not neighbours. */
let TOP = 24, POD_Y = TOP + POD_DY;

/** An SVG element with attributes and children (strings become text). */
export function el(tag, attrs = {}, ...kids) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) e.setAttribute(k, String(v));
  for (const k of kids) e.append(typeof k === "string" ? document.createTextNode(k) : k);
  return e;
}

export const rate = (bytesPerSecond) => {
  if (bytesPerSecond === null || bytesPerSecond === undefined) return "…";
  const bits = bytesPerSecond * 8;
  if (bits >= 1e9) return `${(bits / 1e9).toFixed(2)} Gbit/s`;
  if (bits >= 1e6) return `${(bits / 1e6).toFixed(1)} Mbit/s`;
  if (bits >= 1e3) return `${(bits / 1e3).toFixed(1)} kbit/s`;
  return `${bits} bit/s`;
};

/** What decides the drawing's shape; the drawing is rebuilt when it changes. */
export function shapeKey(state) {
  return JSON.stringify(state.nodes.map((n) => [n.name, n.error ? "down" : n.backend, n.address, (n.pods ?? []).map((p) => [p.namespace, p.name, p.ip, p.mac, p.port])]));
}

/** Where each thing is drawn: nodes by name, pods by "node|name" (as a trace names them). */
export const layout = { nodes: new Map(), pods: new Map(), tunnels: new Map(), width: 0, height: 0 };

/** "tunnel · UDP 8287", "tunnel · UDP 8472 · VNI 1": what the tunnel's datagrams are, as the switch says. */
function tunnelLabel(n) {
  return ["tunnel", ...(n.backendPort ? [`UDP ${n.backendPort}`] : []), ...(n.vni !== undefined ? [`VNI ${n.vni}`] : [])].join(" · ");
}

/** The points of the tunnel from node a to node b, switch to switch (an arc past neighbours). */
function tunnelPoints(a, b) {
  const A = layout.nodes.get(a), B = layout.nodes.get(b);
  const y = A.swY + SW_H / 2;
  const apart = Math.abs(A.i - B.i);
  const dir = Math.sign(B.cx - A.cx);
  const x0 = A.cx + dir * (COL / 2 - 10), x1 = B.cx - dir * (COL / 2 - 10);
  if (apart === 1) return [[A.cx, y], [x0, y], [x1, y], [B.cx, y]];
  const ctrl = TOP - 60 - 14 * (apart - 2);
  const pts = [[A.cx, y], [A.cx, A.swY]];
  for (let k = 0; k <= 16; k++) {
    const t = k / 16;
    const x = (1 - t) ** 2 * A.cx + 2 * (1 - t) * t * ((A.cx + B.cx) / 2) + t ** 2 * B.cx;
    const yy = (1 - t) ** 2 * A.swY + 2 * (1 - t) * t * ctrl + t ** 2 * B.swY;
    pts.push([x, yy]);
  }
  pts.push([B.cx, y]);
  return pts;
}

/** Draws the whole cluster into `svg`; `picked` is {from, to} (pod keys "namespace/name"). */
export function drawCluster(svg, state, picked) {
  svg.replaceChildren();
  layout.nodes.clear();
  layout.pods.clear();
  layout.tunnels.clear();
  const nodes = state.nodes;
  TOP = nodes.length > 2 ? 40 + 10 * (nodes.length - 2) : 24;
  POD_Y = TOP + POD_DY;
  let height = 0;
  nodes.forEach((n, i) => {
    const x = 20 + i * (COL + GAP);
    const pods = n.pods ?? [];
    const h = POD_Y - TOP + Math.max(1, pods.length) * POD_STEP + 10;
    height = Math.max(height, TOP + h);
    layout.nodes.set(n.name, { i, x, cx: x + COL / 2, swY: TOP + SW_DY, h });
  });
  layout.width = Math.max(700, 40 + nodes.length * COL + (nodes.length - 1) * GAP);
  layout.height = height + 60;
  svg.setAttribute("viewBox", `0 0 ${layout.width} ${layout.height}`);
  svg.append(el("defs", {}, el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" }, el("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));

  // The underlay: the network the nodes share, under everything.
  const uy = height + 30;
  svg.append(el("line", { x1: 10, y1: uy, x2: layout.width - 10, y2: uy, class: "underlay" }),
    el("text", { x: 14, y: uy + 20, class: "small" }, "underlay network: the nodes' own addresses; the tunnel's UDP datagrams travel here"));

  for (const n of nodes) {
    const L = layout.nodes.get(n.name);
    const g = el("g", { class: `node${n.error ? " down" : ""}`, "data-node": n.name });
    g.append(el("rect", { x: L.x, y: TOP, width: COL, height: L.h, rx: 14, class: "node-box" }),
      el("text", { x: L.x + 14, y: TOP + 22, class: "node-name" }, n.name, el("tspan", { class: "small" }, n.error ? "  not answering" : `  ${n.address} · pods ${n.podCidr}`)),
      el("line", { x1: L.cx, y1: TOP + L.h, x2: L.cx, y2: uy, class: "uplink" }));
    if (n.error) {
      g.append(el("text", { x: L.x + 14, y: TOP + 60, class: "small error" }, n.error.slice(0, 60)));
      svg.append(g);
      continue;
    }
    // The switch, and its gateway port.
    g.append(el("rect", { x: L.x + 14, y: L.swY, width: COL - 28, height: SW_H, rx: 8, class: "switch" }),
      el("text", { x: L.x + 26, y: L.swY + 22, class: "switch-name" }, `switch · ${n.backend} backend`),
      el("text", { x: L.x + 26, y: L.swY + 42, class: "switch-text" }, `gateway tapnet0 ${n.gateway}`),
      el("text", { x: L.x + 26, y: L.swY + 60, class: "switch-text", "data-rates": n.name }, ""),
      el("text", { x: L.x + COL - 26, y: L.swY + 22, class: "drops", "text-anchor": "end", "data-drops": n.name }, ""));
    // The TAP links: a trunk down from the switch, a branch to each pod.
    const pods = n.pods ?? [];
    const trunkX = L.x + 36;
    const lastY = POD_Y + (pods.length - 1) * POD_STEP + POD_H / 2;
    if (pods.length) g.append(el("line", { x1: trunkX, y1: L.swY + SW_H, x2: trunkX, y2: lastY, class: "tap" }));
    else g.append(el("text", { x: L.x + 26, y: POD_Y + 20, class: "small" }, "no pods"));
    pods.forEach((p, k) => {
      const y = POD_Y + k * POD_STEP;
      const key = `${p.namespace}/${p.name}`;
      const px = L.x + POD_X, py = y + POD_H / 2;
      layout.pods.set(`${n.name}|${p.name}`, { x: px, y: py, trunkX, node: n.name });
      const cls = ["pod", picked.from === key ? "from" : "", picked.to === key ? "to" : ""].join(" ").trim();
      g.append(el("line", { x1: trunkX, y1: py, x2: px, y2: py, class: "tap" }),
        el("text", { x: trunkX + 4, y: py - 5, class: "port" }, `port ${p.port}`),
        el("g", { class: cls, "data-pod": key, tabindex: 0, role: "button" },
          el("title", {}, `pod ${key}: namespace ${p.netns}, ${p.ifname} ${p.ip} ${p.mac}, switch port ${p.port}. Click to trace.`),
          el("rect", { x: px, y, width: POD_W, height: POD_H, rx: 8 }),
          el("text", { x: px + 10, y: y + 20, class: "pod-name" }, p.namespace === "default" ? p.name : key),
          el("text", { x: px + 10, y: y + 38, class: "pod-text" }, `${p.ifname} ${p.ip}`),
          el("text", { x: px + 10, y: y + 54, class: "pod-text mac" }, `MAC ${p.mac}`)));
    });
    svg.append(g);
  }

  // The tunnels: every pair of nodes whose switches answer.
  const up = nodes.filter((n) => !n.error);
  for (let a = 0; a < up.length; a++) {
    for (let b = a + 1; b < up.length; b++) {
      const pts = tunnelPoints(up[a].name, up[b].name);
      layout.tunnels.set(`${up[a].name}|${up[b].name}`, pts);
      layout.tunnels.set(`${up[b].name}|${up[a].name}`, [...pts].reverse());
      const d = "M" + pts.slice(1, -1).map((p) => p.join(",")).join(" L");
      svg.append(el("path", { d, class: "tunnel" }, el("title", {}, `the tunnel between ${up[a].name} and ${up[b].name}: frames for the other node's pods, inside UDP datagrams between the nodes' addresses`)));
      if (up.length === 2) {
        const [x0, y0] = pts[1], [x1] = pts[2];
        const mx = (x0 + x1) / 2;
        svg.append(el("text", { x: mx, y: y0 - 26, class: "tunnel-label", "text-anchor": "middle" }, tunnelLabel(up[a])),
          el("text", { x: mx, y: y0 - 10, class: "small", "text-anchor": "middle", "data-pair": `${up[a].name}|${up[b].name}` }, ""),
          el("text", { x: mx, y: y0 + 22, class: "small", "text-anchor": "middle", "data-pair": `${up[b].name}|${up[a].name}` }, ""));
      }
    }
  }
  svg.append(el("g", { id: "trail" }), el("g", { id: "packet" }));
}

/** The numbers on the drawing: each switch's tunnel rates and drops, each tunnel's rate when there are two nodes. */
export function updateNumbers(svg, state) {
  for (const n of state.nodes) {
    if (n.error) continue;
    const t = n.tunnel;
    const r = svg.querySelector(`[data-rates="${n.name}"]`);
    if (r) r.textContent = `tunnel out ${rate(t.txBps)} · in ${rate(t.rxBps)}`;
    const d = svg.querySelector(`[data-drops="${n.name}"]`);
    const total = n.drops.reduce((s, x) => s + x.count, 0);
    if (d) {
      d.textContent = total ? `${total} dropped` : "no drops";
      d.classList.toggle("some", total > 0);
    }
    for (const label of svg.querySelectorAll(`[data-pair^="${n.name}|"]`)) {
      const pps = t.txPps === null ? "…" : `${t.txPps} pkt/s`;
      const [a, b] = label.dataset.pair.split("|");
      const ltr = layout.nodes.get(a).cx < layout.nodes.get(b).cx;
      label.textContent = ltr ? `${rate(t.txBps)}, ${pps} →` : `← ${rate(t.txBps)}, ${pps}`;
    }
  }
}

/** Where a hop is: its point, and the stem of points from its node's switch to it. */
function place(hop, next) {
  const N = layout.nodes.get(hop.node);
  if (!N) return undefined;
  const sw = [N.cx, N.swY]; // the switch's top edge: its text stays readable under the packet
  const pod = hop.tap !== undefined ? layout.pods.get(`${hop.node}|${hop.tap}`) : undefined;
  if (pod && (hop.stage === "read" || hop.stage === "port-out")) {
    return { node: hop.node, stem: [sw, [pod.trunkX, N.swY], [pod.trunkX, pod.y], [pod.x, pod.y]] };
  }
  const toward = next && next.node !== hop.node ? next.node : undefined;
  if (/tunnel-out|encap|underlay|seal/.test(hop.stage) && toward && layout.tunnels.has(`${hop.node}|${toward}`)) {
    // The tunnel's mouth; the datagram on the wire (the underlay hop) halfway along it.
    const pts = layout.tunnels.get(`${hop.node}|${toward}`);
    if (hop.stage !== "underlay") return { node: hop.node, stem: pts.slice(0, 2), tunnel: toward };
    const k = Math.floor((pts.length - 1) / 2);
    const mid = pts.length === 4 ? [(pts[1][0] + pts[2][0]) / 2, pts[1][1]] : pts[k];
    return { node: hop.node, stem: [...pts.slice(0, pts.length === 4 ? 2 : k), mid], tunnel: toward, along: pts.length === 4 ? 2 : k + 1 };
  }
  return { node: hop.node, stem: [sw] };
}

/** The points a packet passes from one hop's place to the next's. */
function route(from, to) {
  if (!from) return to.stem.slice(-1);
  if (from.node === to.node) {
    // Back along the first stem only as far as the two share their way.
    let k = 0;
    while (k < from.stem.length - 1 && k < to.stem.length - 1 && dist(from.stem[k + 1], to.stem[k + 1]) < 0.5) k++;
    return [...from.stem.slice(k).reverse(), ...to.stem.slice(k + 1)];
  }
  const pipe = layout.tunnels.get(`${from.node}|${to.node}`) ?? [from.stem[0], to.stem[0]];
  // From a point in the tunnel toward the other node: on along it from there.
  const start = from.tunnel === to.node ? [from.stem[from.stem.length - 1], ...pipe.slice(from.along ?? 1)] : [...[...from.stem].reverse(), ...pipe];
  return [...start, ...to.stem];
}

const dist = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1]);

/** Moves the packet from hop i-1's place to hop i's; resolves when it is there. `instant`: no movement. */
export function movePacket(svg, hops, i, instant) {
  const trail = svg.querySelector("#trail"), packet = svg.querySelector("#packet");
  if (!trail || !packet) return Promise.resolve();
  const here = place(hops[i], hops[i + 1]);
  if (!here) return Promise.resolve();
  const prev = i > 0 ? place(hops[i - 1], hops[i]) : undefined;
  const pts = route(prev, here).filter((p, k, a) => k === 0 || dist(p, a[k - 1]) > 0.5);
  // A reply: the packet's source is not the first packet's (the last headers shown say which).
  const src = (h) => h?.headers?.split(" ")[0];
  const latest = hops.slice(0, i + 1).reverse().find((h) => h.headers !== undefined && h.datagram === undefined); // not the outer headers
  const reply = src(latest) !== undefined && src(latest) !== src(hops[0]);
  if (pts.length > 1) trail.append(el("polyline", { points: pts.map((p) => p.join(",")).join(" "), class: `trail${reply ? " reply" : ""}` }));
  const dot = el("circle", { r: 9, class: `packet${reply ? " reply" : ""}` });
  const text = el("text", { class: "packet-label", x: 8, y: 15 }, `${i + 1}. ${hops[i].stage}`);
  const pill = el("rect", { class: "packet-pill", rx: 4, height: 21 });
  const label = el("g", {}, pill, text);
  packet.replaceChildren(dot, label);
  pill.setAttribute("width", String(text.getComputedTextLength() + 16));
  const put = ([x, y]) => {
    dot.setAttribute("cx", x);
    dot.setAttribute("cy", y);
    label.setAttribute("transform", `translate(${x + 12},${y - 32})`);
  };
  const total = pts.slice(1).reduce((s, p, k) => s + dist(p, pts[k]), 0);
  if (instant || total === 0) {
    put(pts[pts.length - 1]);
    return Promise.resolve();
  }
  const ms = Math.min(1400, 250 + total * 1.6);
  return new Promise((resolve) => {
    const t0 = performance.now();
    const frame = (now) => {
      let d = Math.min(1, (now - t0) / ms) * total;
      let k = 1;
      while (k < pts.length - 1 && d > dist(pts[k], pts[k - 1])) d -= dist(pts[k], pts[k - 1]), k++;
      const seg = dist(pts[k], pts[k - 1]) || 1, f = Math.min(1, d / seg);
      put([pts[k - 1][0] + (pts[k][0] - pts[k - 1][0]) * f, pts[k - 1][1] + (pts[k][1] - pts[k - 1][1]) * f]);
      if (now - t0 < ms) requestAnimationFrame(frame);
      else resolve();
    };
    requestAnimationFrame(frame);
  });
}

/** Clears the packet and its trail. */
export function clearPacket(svg) {
  svg.querySelector("#trail")?.replaceChildren();
  svg.querySelector("#packet")?.replaceChildren();
}
