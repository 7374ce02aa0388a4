// The sorties page: whether the daemon runs and how the feeds do; the latest sorties, newest first; the
// watched aircraft seen in the last hour ("Now"); the selected sortie's facts, its track over the coastline
// (SVG) and its sightings. Plain script, no build step, nothing loaded from elsewhere. Every text from the
// API is inserted with textContent or as an attribute value: never parsed as HTML.
//
// Every REFRESH_S the status and Now panels are read again; while a sortie is open (in the list, or an
// aircraft in Now is on one) so are the list and the selected sortie with its track, keeping the
// selection, the highlighted sighting, the keyboard focus and every scroll position.
"use strict";

(() => {
  const SHOW = 200; // sorties listed, the newest
  const PAGE = 5000; // page size when walking /api/sorties (oldest first) to its end
  const MAX_PAGES = 100;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const MAP_W = 640;
  const MAP_H = 520;
  const PAD = 28; // around the drawing, in map units
  const SYNTHETIC = "SYNTHETIC (demo)";
  const KM_PER_DEG = 111.2;

  // -- altitude colours: from ingest/mapping.py by scripts/build_page_colours.py; do not edit
  // matplotlib's 'turbo' at 33 even stops from 0 ft to the top; linear between stops.
  const ALTITUDE_COLOURS = [
    "#30123b", "#392a73", "#4040a2", "#4456c7", "#466be3", "#4680f6", "#4294ff", "#37a8fa",
    "#28bceb", "#1ccdd8", "#18ddc2", "#1fe9af", "#32f298", "#4ef97d", "#6dfe62", "#8bff4b",
    "#a4fc3c", "#b9f635", "#cdec34", "#dfdf37", "#eecf3a", "#f8be39", "#fdac34", "#fe962b",
    "#fb7e21", "#f46617", "#eb500e", "#df3f08", "#d02f05", "#be2102", "#a91601", "#920b01",
    "#7a0403",
  ];
  const NO_ALTITUDE = "#8c8c8c";
  const TOP_MIN_FT = 10000; // the top: the highest altitude rounded up to TOP_STEP_FT, at least this
  const TOP_STEP_FT = 5000;
  // -- end of the altitude colours

  const STOPS = ALTITUDE_COLOURS.map((hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));
  const REFRESH_S = refreshPeriod();

  const $ = (id) => document.getElementById(id);
  let sorties = []; // newest first
  let positions = []; // /api/now: the latest position of each aircraft seen in the last hour
  let current = null; // the selected sortie id
  let generation = 0; // answers for an earlier selection are dropped
  let projected = []; // the selected track's points in map units, for the row highlight
  let highlighted = null; // { id, index }: the sighting picked in the table, kept across refreshes
  let coastline = null; // a promise of the land polygons (null when they could not be had)
  let timer = null;
  let paused = false; // a tick found the tab hidden
  let refreshes = 0;

  // The period, in seconds. `?refresh_s=N` shortens it: a knob for the page's own test
  // (tests/integration/test_page.py), not a setting.
  function refreshPeriod() {
    const asked = Number(new URLSearchParams(location.search).get("refresh_s"));
    return Number.isFinite(asked) && asked >= 0.5 ? asked : 30;
  }

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

  const badge = () => el("span", SYNTHETIC, "badge synthetic");
  const message = (error) => (error instanceof Error ? error.message : String(error));

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

  // Whole minutes, truncated, as `ingest sorties` prints them (2h58m for 10,737 s): the two never disagree.
  function duration(s) {
    if (!Number.isFinite(s)) return "–";
    if (s < 60) return `${Math.floor(s)} s`;
    const m = Math.floor(s / 60);
    return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
  }

  function age(s) {
    if (!Number.isFinite(s)) return "–";
    const whole = Math.max(Math.floor(s), 0);
    return whole < 60 ? `${whole} s` : `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, "0")} s`;
  }

  // "USAF · Boeing RC-135W" from the watchlist; the ICAO type code when it names no more.
  const aircraftName = (s) => [s.operator, s.type_name || s.type].filter(Boolean).join(" · ") || "–";

  function fail(error) {
    const box = $("error");
    box.textContent = message(error);
    box.hidden = false;
    document.body.dataset.state = "error";
  }

  // The altitude scale of ingest map: 0 ft to the highest altitude rounded up to TOP_STEP_FT, at least
  // TOP_MIN_FT; the colour is the colormap's, interpolated between the table's stops; grey when unknown.
  function topFt(points) {
    const highest = points.reduce((top, pt) => (!pt.p.on_ground && Number.isFinite(pt.p.alt_baro_ft) ? Math.max(top, pt.p.alt_baro_ft) : top), 0);
    return Math.max(TOP_MIN_FT, Math.ceil(highest / TOP_STEP_FT) * TOP_STEP_FT);
  }

  const mean = (a, b) => (Number.isFinite(a) && Number.isFinite(b) ? (a + b) / 2 : NaN);

  function colour(ft, top) {
    if (!Number.isFinite(ft)) return NO_ALTITUDE;
    const at = Math.min(Math.max(ft / top, 0), 1) * (STOPS.length - 1);
    const i = Math.min(Math.floor(at), STOPS.length - 2);
    const f = at - i;
    const [r, g, b] = STOPS[i].map((v, k) => Math.round(v + (STOPS[i + 1][k] - v) * f));
    return `rgb(${r}, ${g}, ${b})`;
  }

  // Runs a synchronous re-render and puts every scroll position back as it was. No scrolling by the reader
  // can happen in between, so none is undone; a table rebuilt shorter for a moment cannot lose its place.
  function keepingScroll(render) {
    const panes = [$("list"), $("now"), $("points"), document.scrollingElement].filter(Boolean);
    const kept = panes.map((pane) => [pane.scrollLeft, pane.scrollTop]);
    render();
    panes.forEach((pane, i) => {
      if (pane.scrollLeft !== kept[i][0] || pane.scrollTop !== kept[i][1]) pane.scrollTo(kept[i][0], kept[i][1]);
    });
  }

  // -- status: the daemon and the feeds -------------------------------------------------------------

  async function loadStatus() {
    const line = $("daemon");
    try {
      const body = await getJSON("api/feeds");
      const d = body.daemon || {};
      line.textContent = d.text || "daemon: unknown";
      line.dataset.running = d.running ? "true" : "false";
      line.title = d.last_beat_at ? `last heartbeat ${when(d.last_beat_at)} UTC` : "";
      const list = $("feeds");
      list.replaceChildren();
      for (const f of body.items || []) {
        const item = el("li");
        item.dataset.feed = f.feed;
        item.dataset.state = f.state;
        const since = f.state === "disabled" ? "" : f.last_success ? `, last success ${when(f.last_success)} UTC` : ", no success yet";
        item.append(el("b", f.feed), ` ${f.state}${since}`);
        if (f.error) item.title = `${f.error}${f.failures ? ` (${f.failures} failures in a row)` : ""}`;
        list.appendChild(item);
      }
      if (!list.children.length) list.appendChild(el("li", "no feeds configured"));
    } catch (error) {
      line.textContent = `status unavailable: ${message(error)}`;
      line.dataset.running = "unknown";
    }
  }

  // -- now: the latest position of every watched aircraft seen in the last hour ----------------------

  async function loadNow() {
    try {
      positions = (await getJSON("api/now")).items || [];
      $("positions").caption.textContent = "Now: watched aircraft seen in the last hour";
    } catch (error) {
      positions = [];
      $("positions").caption.textContent = `Now: unavailable (${message(error)})`;
    }
    keepingScroll(renderNow);
  }

  function renderNow() {
    const body = $("positions").tBodies[0];
    body.replaceChildren();
    for (const p of positions) {
      const row = el("tr");
      row.dataset.hex = p.hex;
      if (p.sortie_id) {
        row.dataset.id = p.sortie_id;
        row.className = "has-sortie";
        row.tabIndex = 0;
        row.title = `Show sortie ${p.sortie_id}`;
      }
      row.append(
        el("td", p.registration || p.hex),
        el("td", p.callsign || "–"),
        el("td", when(p.time)),
        el("td", age(p.age_s), "num"),
        el("td", p.on_ground ? "ground" : feet(p.alt_baro_ft), "num"),
        el("td", Number.isFinite(p.gs_kt) ? `${Math.round(p.gs_kt)} kt` : "–", "num"),
        el("td", p.sortie_id ? "open sortie" : "–"),
      );
      body.appendChild(row);
    }
    $("now-empty").hidden = positions.length > 0;
    markSelected(false);
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
    keepingScroll(renderList);
  }

  function renderList() {
    const body = $("sorties").tBodies[0];
    const focused = document.activeElement && body.contains(document.activeElement) ? document.activeElement.dataset.id : null;
    body.replaceChildren();
    for (const s of sorties) {
      const row = el("tr");
      row.dataset.id = s.sortie_id;
      row.tabIndex = 0;
      row.title = s.sortie_id;
      const reg = el("td", s.registration || s.hex);
      if (s.synthetic) reg.appendChild(badge());
      const type = el("td", aircraftName(s), "aircraft");
      if (s.type) type.title = `ICAO type ${s.type}`;
      row.append(
        reg,
        type,
        el("td", (s.callsigns || []).join(", ") || "–"),
        el("td", when(s.start)),
        el("td", s.end ? when(s.end) : "open"),
        el("td", s.end_reason || (s.end ? "–" : "in progress")),
        el("td", duration(s.duration_s), "num"),
        el("td", feet(s.max_alt_baro_ft), "num"),
      );
      body.appendChild(row);
      if (s.sortie_id === focused) row.focus({ preventScroll: true });
    }
    markSelected(false);
  }

  // Marks the selected sortie in the list and in Now; `reveal` scrolls the list to it (a new selection
  // only: a refresh leaves the scroll where the reader put it).
  function markSelected(reveal) {
    for (const row of [...$("sorties").tBodies[0].rows, ...$("positions").tBodies[0].rows]) {
      const on = Boolean(row.dataset.id) && row.dataset.id === current;
      row.classList.toggle("selected", on);
      if (row.dataset.id) row.setAttribute("aria-selected", on ? "true" : "false");
      if (on && reveal && row.closest("#list")) row.scrollIntoView({ block: "nearest" });
    }
  }

  function choose(id) {
    if (fromHash() === id) select(id);
    else location.hash = encodeURIComponent(id); // hashchange selects it
  }

  // -- the selected sortie --------------------------------------------------------------------------

  // A new selection shows "loading" and scrolls the list to it; a refresh (`quiet`) changes nothing the
  // reader sees but the data.
  async function select(id, quiet) {
    const mine = quiet ? generation : ++generation;
    current = id;
    if (!quiet) {
      markSelected(true);
      document.body.dataset.state = "loading";
    }
    try {
      const path = `api/sorties/${encodeURIComponent(id)}`;
      const listed = sorties.find((s) => s.sortie_id === id);
      const [sortie, track, land] = await Promise.all([listed || getJSON(path), getJSON(`${path}/track.geojson`), loadCoastline()]);
      if (mine !== generation) return;
      if (quiet) keepingScroll(() => showSortie(sortie, track, land));
      else showSortie(sortie, track, land);
      $("error").hidden = true;
      document.body.dataset.state = "ready";
    } catch (error) {
      if (mine === generation) fail(`Sortie ${id}: ${message(error)}`);
    }
  }

  function showSortie(s, track, land) {
    const points = (track.features || [])
      .filter((f) => f.properties && f.properties.kind === "sighting" && f.geometry && f.geometry.type === "Point")
      .map((f) => {
        const p = f.properties;
        const [lon, lat] = f.geometry.coordinates;
        const ft = p.on_ground ? 0 : p.alt_baro_ft;
        return { lon, lat, ft, p };
      });
    $("detail").hidden = false;
    const title = $("title");
    title.textContent = [s.registration || s.hex, aircraftName(s), (s.callsigns || []).join(", ")]
      .filter((part) => part && part !== "–")
      .join(" · ");
    if (s.synthetic) title.appendChild(badge());
    const events = s.events || [];
    const facts = [
      ["Sortie", s.sortie_id],
      ["Hex", s.hex],
      ["Registration", s.registration || "–"],
      ["Operator", s.operator || "–"],
      ["Type", s.type_name ? `${s.type_name}${s.type ? ` (${s.type})` : ""}` : s.type || "–"],
      ["Callsigns", (s.callsigns || []).join(", ") || "–"],
      ["Start", `${when(s.start)} UTC`],
      ["End", s.end ? `${when(s.end)} UTC` : "open"],
      ["Reason", s.end_reason ? s.end_reason.replace("_", " ") : "–"],
      ["Duration", duration(s.duration_s)],
      ["Max altitude", feet(s.max_alt_baro_ft)],
      ["Sightings", s.sightings],
      ["Took off from", place(s.took_off_from)],
      ["Landed at", place(s.landed_at)],
      ["Events", counted(events)],
    ];
    if (s.synthetic) facts.unshift(["Data", badge()]);
    const dl = $("facts");
    dl.replaceChildren();
    for (const [k, v] of facts) {
      const pair = el("div");
      const dd = el("dd");
      if (v instanceof Node) dd.appendChild(v);
      else dd.textContent = String(v);
      pair.append(el("dt", k), dd);
      dl.appendChild(pair);
    }
    const list = $("events");
    list.replaceChildren();
    for (const e of events) {
      const item = el("li", happening(e), e.kind);
      item.dataset.event = e.event_id;
      list.appendChild(item);
    }
    list.hidden = events.length === 0;
    drawMap(points, events, land);
    fillSightings(points);
    if (highlighted && highlighted.id === s.sortie_id) highlight(highlighted.index);
    else highlighted = null;
  }

  function place(p) {
    return p ? `${p.name} (${p.code})` : "–";
  }

  // "1 orbit", "2 orbits, 1 emergency", "none"
  function counted(events) {
    const counts = new Map();
    for (const e of events) counts.set(e.kind, (counts.get(e.kind) || 0) + 1);
    return [...counts].map(([kind, n]) => `${n} ${kind}${n === 1 ? "" : "s"}`).join(", ") || "none";
  }

  function happening(e) {
    const d = e.details || {};
    if (e.kind === "orbit") {
      const laps = Number.isFinite(d.laps) ? `${d.laps} laps` : "";
      const leg = Number.isFinite(d.leg_km) ? `legs ~${Math.round(d.leg_km)} km` : "";
      const radius = Number.isFinite(d.radius_km) ? `radius ${Math.round(d.radius_km)} km` : "";
      return [`orbit ${e.n} from ${when(e.started)} UTC`, laps, leg, radius].filter(Boolean).join(", ");
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

  // -- the coastline --------------------------------------------------------------------------------

  // The bundled land (GET /api/coastline.geojson, as ingest map draws it), read once: its polygons, each
  // with its box, and the box the data was cut to (ring edges along it are cuts, not coast).
  function loadCoastline() {
    if (!coastline) {
      coastline = getJSON("api/coastline.geojson").then(
        (doc) => {
          const polygons = [];
          for (const f of doc.features || []) {
            const g = f.geometry || {};
            const parts = g.type === "MultiPolygon" ? g.coordinates : g.type === "Polygon" ? [g.coordinates] : [];
            for (const rings of parts) {
              const [west, east] = extent(rings[0].map((p) => p[0]));
              const [south, north] = extent(rings[0].map((p) => p[1]));
              polygons.push({ rings, box: [west, south, east, north] });
            }
          }
          $("attribution").textContent = "Coastline: Natural Earth 1:50m (public domain)";
          return { polygons, cut: doc.bbox || null };
        },
        (error) => {
          $("attribution").textContent = `No coastline (${message(error)})`;
          coastline = null; // asked again with the next sortie
          return null;
        },
      );
    }
    return coastline;
  }

  function drawLand(map, land, v) {
    const fill = [];
    const coast = [];
    const cut = land.cut;
    const onCut = (a, b) =>
      cut && ((a[0] === b[0] && (a[0] === cut[0] || a[0] === cut[2])) || (a[1] === b[1] && (a[1] === cut[1] || a[1] === cut[3])));
    for (const { rings, box } of land.polygons) {
      const shift = 360 * Math.round((v.cx - (box[0] + box[2]) / 2) / 360); // the copy nearest the view
      if (box[2] + shift < v.lonMin || box[0] + shift > v.lonMax || box[3] < v.latMin || box[1] > v.latMax) continue;
      for (const ring of rings) {
        const xy = ring.map(([lon, lat]) => `${v.X(lon + shift).toFixed(1)},${v.Y(lat).toFixed(1)}`);
        fill.push(`M${xy.join("L")}Z`);
        let run = [];
        for (let i = 1; i < ring.length; i++) {
          if (onCut(ring[i - 1], ring[i])) {
            if (run.length) coast.push(`M${run.join("L")}`);
            run = [];
          } else {
            if (!run.length) run.push(xy[i - 1]);
            run.push(xy[i]);
          }
        }
        if (run.length) coast.push(`M${run.join("L")}`);
      }
    }
    if (fill.length) map.appendChild(svg("path", { class: "land", d: fill.join("") }));
    if (coast.length) map.appendChild(svg("path", { class: "coast", d: coast.join("") }));
    if (cut) {
      // What the view shows beyond the data's box is grey: no data, not sea.
      const shift = 360 * Math.round((v.cx - (cut[0] + cut[2]) / 2) / 360);
      const [x0, x1] = [v.X(cut[0] + shift), v.X(cut[2] + shift)];
      const [y0, y1] = [v.Y(cut[3]), v.Y(cut[1])];
      if (x0 > 0 || y0 > 0 || x1 < MAP_W || y1 < MAP_H) {
        const d = `M-1,-1H${MAP_W + 1}V${MAP_H + 1}H-1Z` + `M${x0.toFixed(1)},${y0.toFixed(1)}H${x1.toFixed(1)}V${y1.toFixed(1)}H${x0.toFixed(1)}Z`;
        map.appendChild(titled(svg("path", { class: "nodata", d }), "beyond the bundled coastline"));
      }
    }
  }

  // -- the map --------------------------------------------------------------------------------------

  function niceStep(span) {
    for (const step of [0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 20, 30]) if (span / step <= 10) return step;
    return 45;
  }

  // Smallest and largest, without spreading a long track into Math.min's arguments.
  const extent = (values) => values.reduce(([lo, hi], v) => [Math.min(lo, v), Math.max(hi, v)], [Infinity, -Infinity]);

  // The view: the track's box, joined by the area's unless that would shrink the track to a speck, in an
  // equirectangular projection true at its middle latitude.
  function view(points, lons, box) {
    let [south, north] = extent(points.map((p) => p.lat));
    let [west, east] = extent(lons);
    if (box && box.north - box.south <= 4 * Math.max(north - south, 0.5) && box.east - box.west <= 4 * Math.max(east - west, 0.5)) {
      [south, north] = [Math.min(south, box.south), Math.max(north, box.north)];
      [west, east] = [Math.min(west, box.west), Math.max(east, box.east)];
    }
    const kx = Math.max(Math.cos((((south + north) / 2) * Math.PI) / 180), 0.05);
    const scale = Math.min((MAP_W - 2 * PAD) / Math.max((east - west) * kx, 0.01), (MAP_H - 2 * PAD) / Math.max(north - south, 0.01));
    const cx = (west + east) / 2;
    const cy = (south + north) / 2;
    return {
      cx, scale,
      X: (lon) => MAP_W / 2 + (lon - cx) * kx * scale,
      Y: (lat) => MAP_H / 2 - (lat - cy) * scale,
      lonMin: cx - MAP_W / 2 / (kx * scale), lonMax: cx + MAP_W / 2 / (kx * scale),
      latMin: cy - MAP_H / 2 / scale, latMax: cy + MAP_H / 2 / scale,
      kx,
    };
  }

  function drawGrid(map, v) {
    const step = niceStep(Math.max(v.latMax - v.latMin, v.lonMax - v.lonMin));
    const grid = svg("g", { class: "grid" });
    for (let lon = Math.ceil(v.lonMin / step) * step; lon <= v.lonMax; lon += step) {
      const x = v.X(lon).toFixed(1);
      grid.appendChild(svg("line", { x1: x, y1: 0, x2: x, y2: MAP_H }));
      if (Number(x) > MAP_W - 48) continue; // no room for its label
      const shown = ((((lon + 180) % 360) + 360) % 360) - 180;
      grid.appendChild(svg("text", { x: Number(x) + 3, y: MAP_H - 5 }, `${+Math.abs(shown).toFixed(2)}°${shown < 0 ? "W" : "E"}`));
    }
    for (let lat = Math.ceil(v.latMin / step) * step; lat <= v.latMax; lat += step) {
      const y = v.Y(lat).toFixed(1);
      grid.appendChild(svg("line", { x1: 0, y1: y, x2: MAP_W, y2: y }));
      if (Number(y) < 16 || Number(y) > MAP_H - 20) continue; // no room, or on the longitude labels
      grid.appendChild(svg("text", { x: 4, y: Number(y) - 3 }, `${+Math.abs(lat).toFixed(2)}°${lat < 0 ? "S" : "N"}`));
    }
    map.appendChild(grid);
  }

  function drawMap(points, events, land) {
    const map = $("track");
    map.replaceChildren();
    map.setAttribute("viewBox", `0 0 ${MAP_W} ${MAP_H}`);
    map.appendChild(svg("rect", { class: "sea", x: 0, y: 0, width: MAP_W, height: MAP_H }));
    projected = [];
    const top = topFt(points);
    if (points.length === 0) {
      map.appendChild(svg("text", { class: "empty", x: MAP_W / 2, y: MAP_H / 2 }, "No positions"));
      drawLegend(top);
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
    const box = area();
    const v = view(points, lons, box);
    const { X, Y } = v;
    if (land) drawLand(map, land, v); // under everything else
    drawGrid(map, v);

    if (box) {
      const rect = svg("rect", {
        class: "area", x: X(box.west).toFixed(1), y: Y(box.north).toFixed(1),
        width: ((box.east - box.west) * v.kx * v.scale).toFixed(1), height: ((box.north - box.south) * v.scale).toFixed(1),
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
    // Each segment takes the colour of its mean altitude, grey when either end has none (as ingest map).
    const coloured = svg("g", { class: "track" });
    for (let i = 1; i < projected.length; i++) {
      coloured.appendChild(svg("line", {
        x1: projected[i - 1][0].toFixed(1), y1: projected[i - 1][1].toFixed(1),
        x2: projected[i][0].toFixed(1), y2: projected[i][1].toFixed(1),
        stroke: colour(mean(points[i - 1].ft, points[i].ft), top),
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
      while (lon - v.cx > 180) lon -= 360;
      while (lon - v.cx < -180) lon += 360;
      const [x, y] = [X(lon), Y(e.lat)];
      const mark = svg("g", { class: `event ${e.kind}`, "data-event": e.event_id });
      const radius = e.details && Number.isFinite(e.details.radius_km) ? (e.details.radius_km / KM_PER_DEG) * v.scale : 0;
      if (e.kind === "orbit" && radius > 0) mark.appendChild(svg("circle", { class: "ring", cx: x.toFixed(1), cy: y.toFixed(1), r: radius.toFixed(1) }));
      mark.appendChild(svg("path", { d: `M${(x - 7).toFixed(1)},${y.toFixed(1)}h14M${x.toFixed(1)},${(y - 7).toFixed(1)}v14` }));
      map.appendChild(titled(mark, happening(e)));
    }
    map.appendChild(svg("circle", { id: "highlight", class: "highlight", cx: -100, cy: -100, r: 9 }));
    drawLegend(top);
  }

  // The colour scale as ingest map's colorbar: 0 ft to the top, in as many steps as the bar has room for.
  function drawLegend(top) {
    const legend = $("legend");
    legend.replaceChildren();
    const key = svg("svg", { viewBox: "0 0 640 26", role: "img", "aria-label": "Altitude colours" });
    const [x0, width, n] = [36, 192, 64];
    key.appendChild(svg("text", { x: 0, y: 17 }, "0 ft"));
    const bar = svg("g", { class: "scale" });
    for (let i = 0; i < n; i++) {
      bar.appendChild(svg("rect", { x: x0 + (i * width) / n, y: 6, width: width / n + 0.3, height: 14, fill: colour(((i + 0.5) / n) * top, top) }));
    }
    key.appendChild(bar);
    key.appendChild(svg("text", { x: x0 + width + 6, y: 17 }, `${top.toLocaleString("en-US")} ft`));
    key.appendChild(svg("rect", { x: 330, y: 6, width: 22, height: 14, fill: NO_ALTITUDE }));
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
    highlighted = { id: current, index };
    mark.setAttribute("cx", at[0].toFixed(1));
    mark.setAttribute("cy", at[1].toFixed(1));
    for (const row of $("sightings").tBodies[0].querySelectorAll("tr.selected")) row.classList.remove("selected");
    const row = $("sightings").tBodies[0].rows[index];
    if (row) row.classList.add("selected");
  }

  // -- refreshing -----------------------------------------------------------------------------------

  const live = () => sorties.some((s) => !s.end) || positions.some((p) => p.sortie_id);

  function showLive() {
    const on = live();
    document.body.dataset.live = on ? "open" : "idle";
    $("live").textContent = on ? `live: refreshing every ${REFRESH_S} s` : "";
  }

  // The list and the selected sortie again; each re-render keeps the scroll positions (keepingScroll).
  async function refreshSorties() {
    try {
      await loadSorties();
      if (current) await select(current, true);
      else if (document.body.dataset.state === "error") $("error").hidden = true;
    } catch (error) {
      fail(error);
    }
  }

  // A hidden tab reads nothing: it pauses, and catches up as soon as it is shown again.
  async function tick() {
    timer = null;
    if (document.hidden) {
      paused = true;
      return;
    }
    try {
      await Promise.all([loadStatus(), loadNow()]);
      if (live()) {
        await refreshSorties();
        refreshes += 1;
        document.body.dataset.refreshes = String(refreshes);
      }
      showLive();
    } finally {
      schedule();
    }
  }

  function schedule() {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(tick, REFRESH_S * 1000);
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
    loadCoastline();
    const panels = Promise.all([loadStatus(), loadNow()]);
    try {
      await loadSorties();
    } catch (error) {
      fail(error);
      await panels;
      schedule();
      return;
    }
    const wanted = fromHash() || (sorties[0] && sorties[0].sortie_id);
    if (wanted) await select(wanted);
    else document.body.dataset.state = "ready";
    await panels;
    markSelected(false);
    showLive();
    schedule();
  }

  function onRowKey(event, pick) {
    const row = event.target.closest("tr");
    if (!row) return;
    if ((event.key === "Enter" || event.key === " ") && row.dataset.id) {
      event.preventDefault();
      pick(row.dataset.id);
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const next = event.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling;
      if (next) next.focus();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const table of [$("sorties"), $("positions")]) {
      const body = table.tBodies[0];
      body.addEventListener("click", (event) => {
        const row = event.target.closest("tr");
        if (row && row.dataset.id) choose(row.dataset.id);
      });
      body.addEventListener("keydown", (event) => onRowKey(event, choose));
    }
    $("sightings").tBodies[0].addEventListener("click", (event) => {
      const row = event.target.closest("tr");
      if (row) highlight(Number(row.dataset.index));
    });
    $("refresh").addEventListener("click", async () => {
      await Promise.all([loadStatus(), loadNow(), refreshSorties()]);
      showLive();
      schedule();
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && paused) {
        paused = false;
        tick();
      }
    });
    window.addEventListener("hashchange", () => {
      const id = fromHash();
      if (id && id !== current) select(id);
    });
    start();
  });
})();
