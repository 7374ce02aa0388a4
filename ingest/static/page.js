// The sorties page: the latest sorties, newest first; the selected one's track (SVG) and sightings.
// Plain script, no build step, nothing loaded from elsewhere. Every text from the API is inserted with
// textContent or as an attribute value: never parsed as HTML.
"use strict";

(() => {
  const SHOW = 200; // sorties listed, the newest
  const PAGE = 5000; // page size when walking /api/sorties (oldest first) to its end
  const MAX_PAGES = 100;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const MAP_W = 640;
  const MAP_H = 520;
  const PAD = 28; // around the drawing, in map units
  const TOP_FT = 45000; // the altitude colour scale: 0 ft to this

  const $ = (id) => document.getElementById(id);
  let sorties = []; // newest first
  let current = null; // the selected sortie id
  let generation = 0; // answers for an earlier selection are dropped
  let projected = []; // the selected track's points in map units, for the row highlight

  // -- helpers --------------------------------------------------------------------------------------

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function titled(node, text) {
    node.appendChild(svg("title", {}, text));
    return node;
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const why = body && typeof body.error === "string" ? body.error : response.statusText;
      throw new Error(`${url}: ${response.status} ${why}`);
    }
    if (body === null) throw new Error(`${url}: not JSON`);
    return body;
  }

  function area() {
    const meta = document.querySelector('meta[name="ingest-area"]');
    try {
      const a = JSON.parse(meta.content);
      const ok = [a.south, a.west, a.north, a.east].every(Number.isFinite) && a.south < a.north && a.west < a.east;
      return ok ? a : null;
    } catch (e) {
      return null; // the page opened from the file, not served: no box
    }
  }

  const when = (iso) => (iso ? String(iso).replace("T", " ").replace(/\.\d+/, "").replace("Z", "") : "");
  const num = (v, digits) => (Number.isFinite(v) ? v.toFixed(digits) : "–");
  const feet = (ft) => (Number.isFinite(ft) ? `${Math.round(ft).toLocaleString("en-US")} ft` : "–");

  function duration(s) {
    if (!Number.isFinite(s)) return "–";
    if (s < 60) return `${Math.round(s)} s`;
    const m = Math.round(s / 60);
    return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
  }

  function fail(error) {
    const box = $("error");
    box.textContent = error instanceof Error ? error.message : String(error);
    box.hidden = false;
    document.body.dataset.state = "error";
  }

  // Altitude colours: orange low, through green and blue, to violet at TOP_FT; grey when unknown.
  function colour(ft) {
    if (!Number.isFinite(ft)) return "#9a9a9a";
    const t = Math.min(Math.max(ft / TOP_FT, 0), 1);
    return `hsl(${Math.round(25 + t * 250)}, 85%, ${Math.round(45 - 8 * Math.sin(t * Math.PI))}%)`;
  }

  // -- the list -------------------------------------------------------------------------------------

  async function loadSorties() {
    let kept = [];
    let total = 0;
    let cursor = null;
    let pages = 0;
    do {
      const query = new URLSearchParams({ limit: String(PAGE) });
      if (cursor) query.set("cursor", cursor);
      const page = await getJSON(`api/sorties?${query}`);
      total += page.items.length;
      kept = kept.concat(page.items).slice(-SHOW);
      cursor = page.next;
      pages += 1;
    } while (cursor && pages < MAX_PAGES);
    sorties = kept.reverse();
    const more = cursor ? " (more not read)" : "";
    $("summary").textContent =
      total === 0
        ? "No sorties stored yet."
        : `${total} sorties stored${more}; ${sorties.length < total ? `the newest ${sorties.length} shown` : "all shown"}.`;
    renderList();
  }

  function renderList() {
    const body = $("sorties").tBodies[0];
    body.replaceChildren();
    for (const s of sorties) {
      const row = el("tr");
      row.dataset.id = s.sortie_id;
      row.tabIndex = 0;
      row.title = s.sortie_id;
      row.append(
        el("td", s.registration || s.hex),
        el("td", s.type || "–"),
        el("td", (s.callsigns || []).join(", ") || "–"),
        el("td", when(s.start)),
        el("td", s.end ? when(s.end) : "open"),
        el("td", s.end_reason || (s.end ? "–" : "in progress")),
        el("td", duration(s.duration_s), "num"),
        el("td", feet(s.max_alt_baro_ft), "num"),
      );
      body.appendChild(row);
    }
    markSelected();
  }

  function markSelected() {
    for (const row of $("sorties").tBodies[0].rows) {
      const on = row.dataset.id === current;
      row.classList.toggle("selected", on);
      row.setAttribute("aria-selected", on ? "true" : "false");
      if (on) row.scrollIntoView({ block: "nearest" });
    }
  }

  function choose(id) {
    if (decodeURIComponent(location.hash.slice(1)) === id) select(id);
    else location.hash = encodeURIComponent(id); // hashchange selects it
  }

  // -- the selected sortie --------------------------------------------------------------------------

  async function select(id) {
    const mine = ++generation;
    current = id;
    markSelected();
    document.body.dataset.state = "loading";
    try {
      const path = `api/sorties/${encodeURIComponent(id)}`;
      const sortie = sorties.find((s) => s.sortie_id === id) || (await getJSON(path));
      const track = await getJSON(`${path}/track.geojson`);
      if (mine !== generation) return;
      showSortie(sortie, track);
      $("error").hidden = true;
      document.body.dataset.state = "ready";
    } catch (error) {
      if (mine === generation) fail(`Sortie ${id}: ${error instanceof Error ? error.message : error}`);
    }
  }

  function showSortie(s, track) {
    const points = (track.features || [])
      .filter((f) => f.properties && f.properties.kind === "sighting" && f.geometry && f.geometry.type === "Point")
      .map((f) => {
        const p = f.properties;
        const [lon, lat] = f.geometry.coordinates;
        const ft = p.on_ground ? 0 : p.alt_baro_ft;
        return { lon, lat, ft, p };
      });
    $("detail").hidden = false;
    $("title").textContent = [s.registration || s.hex, s.type, (s.callsigns || []).join(", ")]
      .filter(Boolean)
      .join(" · ");
    const facts = [
      ["Sortie", s.sortie_id],
      ["Hex", s.hex],
      ["Registration", s.registration || "–"],
      ["Type", s.type || "–"],
      ["Callsigns", (s.callsigns || []).join(", ") || "–"],
      ["Start", `${when(s.start)} UTC`],
      ["End", s.end ? `${when(s.end)} UTC` : "open"],
      ["Reason", s.end_reason ? s.end_reason.replace("_", " ") : "–"],
      ["Duration", duration(s.duration_s)],
      ["Max altitude", feet(s.max_alt_baro_ft)],
      ["Sightings", s.sightings],
      ["Took off from", place(s.took_off_from)],
      ["Landed at", place(s.landed_at)],
      ["Events", (s.events || []).map(happening).join("; ") || "–"],
    ];
    const dl = $("facts");
    dl.replaceChildren();
    for (const [k, v] of facts) {
      const pair = el("div");
      pair.append(el("dt", k), el("dd", v));
      dl.appendChild(pair);
    }
    drawMap(points, s.events || []);
    fillSightings(points);
  }

  function place(p) {
    return p ? `${p.name} (${p.code})` : "–";
  }

  function happening(e) {
    const d = e.details || {};
    if (e.kind === "orbit") {
      const laps = Number.isFinite(d.laps) ? `${d.laps} laps` : "";
      const leg = Number.isFinite(d.leg_km) ? `legs ~${Math.round(d.leg_km)} km` : "";
      return [`orbit ${e.n} from ${when(e.started)} UTC`, laps, leg].filter(Boolean).join(", ");
    }
    return `${e.kind} ${e.n} at ${when(e.detected)} UTC${d.squawk ? ` (squawk ${d.squawk})` : ""}`;
  }

  function fillSightings(points) {
    const body = $("sightings").tBodies[0];
    body.replaceChildren();
    points.forEach((pt, i) => {
      const p = pt.p;
      const row = el("tr");
      row.dataset.index = String(i);
      row.append(
        el("td", when(p.time)),
        el("td", num(pt.lat, 4), "num"),
        el("td", num(pt.lon, 4), "num"),
        el("td", p.on_ground ? "ground" : feet(p.alt_baro_ft), "num"),
        el("td", Number.isFinite(p.gs_kt) ? `${Math.round(p.gs_kt)} kt` : "–", "num"),
        el("td", Number.isFinite(p.track_deg) ? `${Math.round(p.track_deg)}°` : "–", "num"),
      );
      body.appendChild(row);
    });
    $("sightings").caption.textContent = `Sightings (${points.length})`;
  }

  function niceStep(span) {
    for (const step of [0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 20, 30]) if (span / step <= 10) return step;
    return 45;
  }

  function drawMap(points, events) {
    const map = $("track");
    map.replaceChildren();
    map.setAttribute("viewBox", `0 0 ${MAP_W} ${MAP_H}`);
    map.appendChild(svg("rect", { class: "sea", x: 0, y: 0, width: MAP_W, height: MAP_H }));
    projected = [];
    if (points.length === 0) {
      map.appendChild(svg("text", { class: "empty", x: MAP_W / 2, y: MAP_H / 2 }, "No positions"));
      drawLegend();
      return;
    }
    // Longitudes unwrapped along the track, so one crossing 180° stays continuous.
    const lons = [points[0].lon];
    for (let i = 1; i < points.length; i++) {
      let lon = points[i].lon;
      while (lon - lons[i - 1] > 180) lon -= 360;
      while (lon - lons[i - 1] < -180) lon += 360;
      lons.push(lon);
    }
    const lats = points.map((p) => p.lat);
    let [south, north] = [Math.min(...lats), Math.max(...lats)];
    let [west, east] = [Math.min(...lons), Math.max(...lons)];
    const box = area();
    // The area's box joins the view unless it would shrink the track to a speck.
    if (box && box.north - box.south <= 4 * Math.max(north - south, 0.5) && box.east - box.west <= 4 * Math.max(east - west, 0.5)) {
      [south, north] = [Math.min(south, box.south), Math.max(north, box.north)];
      [west, east] = [Math.min(west, box.west), Math.max(east, box.east)];
    }
    const kx = Math.max(Math.cos((((south + north) / 2) * Math.PI) / 180), 0.05); // equirectangular, cos(lat)
    const spanX = Math.max((east - west) * kx, 0.01);
    const spanY = Math.max(north - south, 0.01);
    const scale = Math.min((MAP_W - 2 * PAD) / spanX, (MAP_H - 2 * PAD) / spanY);
    const cx = (west + east) / 2;
    const cy = (south + north) / 2;
    const X = (lon) => MAP_W / 2 + (lon - cx) * kx * scale;
    const Y = (lat) => MAP_H / 2 - (lat - cy) * scale;

    // Graticule, labelled on the left and bottom edges.
    const lonMin = cx - MAP_W / 2 / (kx * scale);
    const lonMax = cx + MAP_W / 2 / (kx * scale);
    const latMin = cy - MAP_H / 2 / scale;
    const latMax = cy + MAP_H / 2 / scale;
    const step = niceStep(Math.max(latMax - latMin, lonMax - lonMin));
    const grid = svg("g", { class: "grid" });
    for (let lon = Math.ceil(lonMin / step) * step; lon <= lonMax; lon += step) {
      const x = X(lon).toFixed(1);
      grid.appendChild(svg("line", { x1: x, y1: 0, x2: x, y2: MAP_H }));
      if (Number(x) > MAP_W - 48) continue; // no room for its label
      const shown = ((((lon + 180) % 360) + 360) % 360) - 180;
      grid.appendChild(svg("text", { x: Number(x) + 3, y: MAP_H - 5 }, `${+Math.abs(shown).toFixed(2)}°${shown < 0 ? "W" : "E"}`));
    }
    for (let lat = Math.ceil(latMin / step) * step; lat <= latMax; lat += step) {
      const y = Y(lat).toFixed(1);
      grid.appendChild(svg("line", { x1: 0, y1: y, x2: MAP_W, y2: y }));
      if (Number(y) < 16 || Number(y) > MAP_H - 20) continue; // no room, or on the longitude labels
      grid.appendChild(svg("text", { x: 4, y: Number(y) - 3 }, `${+Math.abs(lat).toFixed(2)}°${lat < 0 ? "S" : "N"}`));
    }
    map.appendChild(grid);

    if (box) {
      const rect = svg("rect", {
        class: "area", x: X(box.west).toFixed(1), y: Y(box.north).toFixed(1),
        width: ((box.east - box.west) * kx * scale).toFixed(1), height: ((box.north - box.south) * scale).toFixed(1),
      });
      map.appendChild(titled(rect, `Area: ${box.name || ""}`));
      const label = svg("text", { class: "area-label", x: Math.max(X(box.west), 0) + 6, y: Math.max(Y(box.north), 0) + 16 }, box.name || "area");
      map.appendChild(label);
    }

    projected = points.map((p, i) => [X(lons[i]), Y(p.lat)]);
    const line = svg("polyline", {
      id: "track-line", class: "track-base",
      points: projected.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "),
    });
    map.appendChild(line);
    const coloured = svg("g", { class: "track" });
    for (let i = 1; i < projected.length; i++) {
      const [a, b] = [points[i - 1].ft, points[i].ft];
      const ft = Number.isFinite(a) && Number.isFinite(b) ? (a + b) / 2 : Number.isFinite(a) ? a : b;
      coloured.appendChild(svg("line", {
        x1: projected[i - 1][0].toFixed(1), y1: projected[i - 1][1].toFixed(1),
        x2: projected[i][0].toFixed(1), y2: projected[i][1].toFixed(1), stroke: colour(ft),
      }));
    }
    map.appendChild(coloured);

    const first = points[0];
    const last = points[points.length - 1];
    const [sx, sy] = projected[0];
    const [ex, ey] = projected[projected.length - 1];
    // End: a hollow square; start: a dot drawn over it, so both show when the sortie ends where it began.
    // Labels: "start" to the left, "end" to the right, unless that runs off the map.
    map.appendChild(titled(svg("rect", { class: "end", x: (ex - 8).toFixed(1), y: (ey - 8).toFixed(1), width: 16, height: 16 }),
      `End ${when(last.p.time)} UTC, ${last.p.on_ground ? "ground" : feet(last.p.alt_baro_ft)}`));
    map.appendChild(titled(svg("circle", { class: "start", cx: sx.toFixed(1), cy: sy.toFixed(1), r: 6 }),
      `Start ${when(first.p.time)} UTC, ${first.p.on_ground ? "ground" : feet(first.p.alt_baro_ft)}`));
    const left = sx > 50;
    map.appendChild(svg("text", { class: "marker-label", x: left ? sx - 12 : sx + 12, y: sy + 4, "text-anchor": left ? "end" : "start" }, "start"));
    const right = ex < MAP_W - 40;
    map.appendChild(svg("text", { class: "marker-label", x: right ? ex + 13 : ex - 13, y: ey + 4, "text-anchor": right ? "start" : "end" }, "end"));
    for (const e of events) {
      if (!Number.isFinite(e.lat) || !Number.isFinite(e.lon)) continue;
      let lon = e.lon;
      while (lon - cx > 180) lon -= 360;
      while (lon - cx < -180) lon += 360;
      const [x, y] = [X(lon), Y(e.lat)];
      const mark = svg("g", { class: `event ${e.kind}`, "data-event": e.event_id });
      const radius = e.details && Number.isFinite(e.details.radius_km) ? (e.details.radius_km / 111.2) * scale : 0;
      if (e.kind === "orbit" && radius > 0) mark.appendChild(svg("circle", { class: "ring", cx: x.toFixed(1), cy: y.toFixed(1), r: radius.toFixed(1) }));
      mark.appendChild(svg("path", { d: `M${(x - 7).toFixed(1)},${y.toFixed(1)}h14M${x.toFixed(1)},${(y - 7).toFixed(1)}v14` }));
      map.appendChild(titled(mark, happening(e)));
    }
    map.appendChild(svg("circle", { id: "highlight", class: "highlight", cx: -100, cy: -100, r: 9 }));
    drawLegend();
  }

  function drawLegend() {
    const legend = $("legend");
    legend.replaceChildren();
    const key = svg("svg", { viewBox: "0 0 640 26", role: "img", "aria-label": "Altitude colours" });
    const n = 9;
    key.appendChild(svg("text", { x: 0, y: 17 }, "0 ft"));
    for (let i = 0; i < n; i++) {
      key.appendChild(svg("rect", { x: 36 + i * 22, y: 6, width: 22, height: 14, fill: colour((i / (n - 1)) * TOP_FT) }));
    }
    key.appendChild(svg("text", { x: 36 + n * 22 + 6, y: 17 }, `${TOP_FT.toLocaleString("en-US")} ft`));
    key.appendChild(svg("rect", { x: 330, y: 6, width: 22, height: 14, fill: colour(null) }));
    key.appendChild(svg("text", { x: 358, y: 17 }, "no altitude"));
    key.appendChild(svg("circle", { class: "start", cx: 460, cy: 13, r: 6 }));
    key.appendChild(svg("text", { x: 472, y: 17 }, "start"));
    key.appendChild(svg("rect", { class: "end", x: 519, y: 6, width: 14, height: 14 }));
    key.appendChild(svg("text", { x: 538, y: 17 }, "end"));
    legend.appendChild(key);
  }

  function highlight(index) {
    const mark = $("highlight");
    const at = projected[index];
    if (!mark || !at) return;
    mark.setAttribute("cx", at[0].toFixed(1));
    mark.setAttribute("cy", at[1].toFixed(1));
    for (const row of $("sightings").tBodies[0].querySelectorAll("tr.selected")) row.classList.remove("selected");
    const row = $("sightings").tBodies[0].rows[index];
    if (row) row.classList.add("selected");
  }

  // -- wiring ---------------------------------------------------------------------------------------

  function fromHash() {
    try {
      return decodeURIComponent(location.hash.slice(1)).trim();
    } catch (e) {
      return "";
    }
  }

  async function start() {
    try {
      await loadSorties();
    } catch (error) {
      fail(error);
      return;
    }
    const wanted = fromHash() || (sorties[0] && sorties[0].sortie_id);
    if (wanted) await select(wanted);
    else document.body.dataset.state = "ready";
  }

  document.addEventListener("DOMContentLoaded", () => {
    const list = $("sorties").tBodies[0];
    list.addEventListener("click", (event) => {
      const row = event.target.closest("tr");
      if (row && row.dataset.id) choose(row.dataset.id);
    });
    list.addEventListener("keydown", (event) => {
      const row = event.target.closest("tr");
      if (!row) return;
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        choose(row.dataset.id);
      } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const next = event.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling;
        if (next) next.focus();
      }
    });
    $("sightings").tBodies[0].addEventListener("click", (event) => {
      const row = event.target.closest("tr");
      if (row) highlight(Number(row.dataset.index));
    });
    $("refresh").addEventListener("click", async () => {
      try {
        await loadSorties();
        if (current) await select(current);
      } catch (error) {
        fail(error);
      }
    });
    window.addEventListener("hashchange", () => {
      const id = fromHash();
      if (id && id !== current) select(id);
    });
    start();
  });
})();
