// The annotator page: one image at a time with its requested points and regions drawn over it. Every answer
// goes straight to the server (the label store); the page only keeps what to show and this session's undo list.
"use strict";

(() => {
  // Class keys: 1-9, then letters that are not commands (b e f n p s z are).
  const CLASS_KEYS = "123456789qwrtyuioadghjklxcvm";
  const ANNOTATOR_PATTERN = /^[A-Za-z0-9_.@-]{1,64}$/;
  const OPEN_COLOUR = [255, 255, 255];
  const SKIPPED_COLOUR = [150, 150, 150];
  const SELECTED_COLOUR = [255, 214, 0];
  const MAX_SECONDS = 3600;  // a label left on screen over a break is not labelling time
  const LISTED = 100;  // requests listed in the side panel

  const $ = (id) => document.getElementById(id);
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");

  // The token arrives in the address once; keep it for this tab only and take it out of the address bar.
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    sessionStorage.setItem("syn2real.token", params.get("token"));
    params.delete("token");
    history.replaceState(null, "", location.pathname + (params.toString() ? "?" + params : ""));
  }
  const token = sessionStorage.getItem("syn2real.token") || "";

  const state = {
    meta: null,
    annotator: params.get("annotator") || localStorage.getItem("syn2real.annotator") || "",
    image: null,          // name of the image shown
    imageEl: null,
    predictionEl: null,
    showPrediction: false,
    width: 0,
    height: 0,
    requests: [],
    selected: -1,
    selectedAt: performance.now(),
    view: { scale: 1, ox: 0, oy: 0 },
    brush: null,          // {request, labels (Uint8Array over the box), cls, radius, eraser}
    pointer: null,        // last pointer position on the canvas, CSS pixels
    drag: null,
    history: [],          // images shown in this tab, for previous / next
    historyPos: -1,
    undo: [],             // [{request, image}] answers given in this tab, newest last
    lastClass: 0,
    queue: Promise.resolve(),
  };

  // ---- server ---------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function detailText(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((d) => (d.loc ? d.loc.slice(1).join(".") + ": " : "") + d.msg).join("; ");
    }
    return JSON.stringify(detail);
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
    const response = await fetch(path, init);
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      throw new ApiError(response.status, data && data.detail ? detailText(data.detail) : response.statusText);
    }
    return data;
  }

  // <img> cannot send headers: the token rides in the query.
  function imageUrl(name, what) {
    const url = `/api/images/${encodeURIComponent(name)}/${what}`;
    return token ? `${url}?token=${encodeURIComponent(token)}` : url;
  }

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("could not load " + url.split("?")[0]));
      img.src = url;
    });
  }

  // Actions run one after another, each on the state the previous one left: fast typing answers request after
  // request in order.
  function enqueue(action) {
    state.queue = state.queue.then(action).catch(showError);
    return state.queue;
  }

  // ---- run lengths ([value, count] pairs over a box, row by row) --------------------------------------------

  function decodeRuns(runs, size) {
    const out = new Uint8Array(size);
    let at = 0;
    for (const [value, count] of runs) {
      out.fill(value, at, at + count);
      at += count;
    }
    return out;
  }

  function encodeRuns(values) {
    const runs = [];
    for (let i = 0; i < values.length; i++) {
      if (runs.length && runs[runs.length - 1][0] === values[i]) runs[runs.length - 1][1]++;
      else runs.push([values[i], 1]);
    }
    return runs;
  }

  // ---- requests -------------------------------------------------------------------------------------------

  function prepare(r) {
    r.mask = r.kind === "region" ? decodeRuns(r.mask, r.width * r.height) : new Uint8Array([1]);
    setAnswer(r, r.answer);
    return r;
  }

  // `given` as the server lists it: {annotator, skipped, class (points) or labels (run lengths, regions)}, or null.
  function setAnswer(r, given) {
    r.answer = given;
    r.labels = null;
    if (given && !given.skipped) {
      r.labels = r.kind === "region" ? decodeRuns(given.labels, r.width * r.height) : new Uint8Array([given.class]);
    }
    r.state = !given ? "open" : given.skipped ? "skipped" : "answered";
  }

  function classColour(c) {
    return c < state.meta.classes.length ? state.meta.palette[c] : SKIPPED_COLOUR;
  }

  function className(c) {
    return c < state.meta.classes.length ? state.meta.classes[c] : "left open";
  }

  // A region's look at image resolution: translucent fill (its answer's classes, or the brush's paint) and an
  // opaque one-pixel outline, yellow when selected.
  function paintRegion(r, selected) {
    const { width: w, height: h } = r;
    if (!r.canvas) {
      r.canvas = document.createElement("canvas");
      r.canvas.width = w;
      r.canvas.height = h;
    }
    const c = r.canvas.getContext("2d");
    const pixels = c.createImageData(w, h);
    const brush = state.brush && state.brush.request === r ? state.brush.labels : null;
    const labels = brush || r.labels;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        if (!r.mask[i]) continue;
        const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 || !r.mask[i - 1] || !r.mask[i + 1] ||
          !r.mask[i - w] || !r.mask[i + w];
        let colour = r.state === "skipped" ? SKIPPED_COLOUR : OPEN_COLOUR;
        let alpha = brush ? 40 : 90;
        if (labels && labels[i] !== 255) {
          colour = classColour(labels[i]);
          alpha = brush ? 170 : 130;
        }
        if (edge) {
          colour = selected ? SELECTED_COLOUR : labels ? colour : OPEN_COLOUR;
          alpha = 255;
        }
        pixels.data.set([colour[0], colour[1], colour[2], alpha], i * 4);
      }
    }
    c.putImageData(pixels, 0, 0);
  }

  function paintRegions() {
    state.requests.forEach((r, i) => {
      if (r.kind === "region") paintRegion(r, i === state.selected);
    });
  }

  function openCount() {
    return state.requests.filter((r) => r.state === "open").length;
  }

  function selectedRequest() {
    return state.requests[state.selected] || null;
  }

  function select(index) {
    const before = state.selected;
    state.selected = index;
    state.selectedAt = performance.now();
    for (const i of [before, index]) {
      const r = state.requests[i];
      if (r && r.kind === "region") paintRegion(r, i === index);
    }
    renderSide();
    redraw();
  }

  // The next open request after `from` (wrapping round), or -1.
  function nextOpen(from) {
    const n = state.requests.length;
    for (let k = 1; k <= n; k++) {
      const i = (from + k + n) % n;
      if (state.requests[i].state === "open") return i;
    }
    return -1;
  }

  // ---- images and navigation ------------------------------------------------------------------------------

  async function fetchRequests(name) {
    const data = await api("GET", `/api/images/${encodeURIComponent(name)}/requests`);
    if (data.prediction_problem) status(data.prediction_problem);
    return data;
  }

  async function showImage(name, remember) {
    const [data, imageEl] = await Promise.all([fetchRequests(name), loadImage(imageUrl(name, "file"))]);
    const predictionEl = data.prediction ? await loadImage(imageUrl(name, "prediction")).catch(() => null) : null;
    Object.assign(state, {
      image: name, imageEl, predictionEl, width: data.width, height: data.height,
      requests: data.requests.map(prepare), brush: null, selected: -1,
    });
    if (remember) {
      state.history = state.history.slice(0, state.historyPos + 1).concat([name]);
      state.historyPos = state.history.length - 1;
    }
    saveSession();
    fitView();
    paintRegions();
    const first = nextOpen(-1);
    select(first >= 0 ? first : 0);
    showBanner();
  }

  async function refreshRequests(keepId) {
    const data = await fetchRequests(state.image);
    state.requests = data.requests.map(prepare);
    const index = state.requests.findIndex((r) => r.id === keepId);
    state.selected = index;
    paintRegions();
    return index;
  }

  async function nextImage() {
    if (state.brush) return status("save (Enter) or cancel (Esc) the brush first");
    if (state.historyPos < state.history.length - 1) {
      state.historyPos++;
      return showImage(state.history[state.historyPos], false);
    }
    const { image } = await api("POST", "/api/next", { annotator: state.annotator });
    if (image === null) {
      showBanner();
      return status("no image with open requests is free: all answered, or the rest are with other annotators");
    }
    if (image === state.image) {
      return status(`${openCount()} request(s) of this image are still open: answer or skip (S) them first`);
    }
    await showImage(image, true);
  }

  async function previousImage() {
    if (state.brush) return status("save (Enter) or cancel (Esc) the brush first");
    if (state.historyPos <= 0) return status("no previous image in this session");
    state.historyPos--;
    await showImage(state.history[state.historyPos], false);
  }

  // The lease on an image lapses after lease_seconds without a call: renew it while there is work on it.
  function heartbeat() {
    if (state.image && openCount() > 0) {
      api("POST", "/api/next", { annotator: state.annotator }).catch(showError);
    }
  }

  function saveSession() {
    sessionStorage.setItem("syn2real.session." + state.annotator,
      JSON.stringify({ history: state.history, historyPos: state.historyPos, undo: state.undo }));
  }

  function loadSession() {
    const saved = JSON.parse(sessionStorage.getItem("syn2real.session." + state.annotator) || "null");
    if (saved) Object.assign(state, saved);
  }

  // ---- answers --------------------------------------------------------------------------------------------

  async function answer(r, payload) {
    if (r.answer && r.answer.annotator !== state.annotator) {
      return status(`request #${r.id} is answered by ${r.answer.annotator}`);
    }
    const seconds = Math.min((performance.now() - state.selectedAt) / 1000, MAX_SECONDS);
    if (r.answer) {
      // A change of mind: take the old answer back, then give the new one.
      await api("DELETE", `/api/answers/${r.id}?annotator=${encodeURIComponent(state.annotator)}`);
    }
    try {
      await api("POST", "/api/answers", {
        annotator: state.annotator, image: state.image, request: r.id,
        seconds: Math.round(seconds * 100) / 100, ...payload,
      });
    } catch (error) {
      await refreshRequests(r.id);  // e.g. someone else answered it meanwhile
      throw error;
    }
    state.undo = state.undo.filter((u) => u.request !== r.id);  // a changed answer is undone once
    state.undo.push({ request: r.id, image: state.image });
    saveSession();
    // The server took exactly what was sent: show it without fetching the image's requests again.
    const labels = payload.class !== undefined && r.kind === "region"
      ? encodeRuns(r.mask.map((inside) => (inside ? payload.class : 255))) : payload.labels;
    setAnswer(r, { annotator: state.annotator, skipped: !!payload.skipped, class: payload.class, labels });
    state.brush = null;
    const index = state.requests.indexOf(r);
    const next = nextOpen(index);
    select(next >= 0 ? next : index);
    showBanner();
    updateProgress().catch(showError);
  }

  function chooseClass(c) {
    if (state.brush) {
      Object.assign(state.brush, { cls: c, eraser: false });
      return renderSide();
    }
    const r = selectedRequest();
    if (!r) return status("no request selected");
    state.lastClass = c;
    return answer(r, { class: c });
  }

  function acceptSuggestion() {
    if (state.brush) return saveBrush();
    const r = selectedRequest();
    if (!r) return status("no request selected");
    if (r.suggestion === null) return status("no prediction to accept here: choose the class with its key");
    return chooseClass(r.suggestion);
  }

  function skip() {
    if (state.brush) return status("cancel the brush (Esc) to skip this region");
    const r = selectedRequest();
    return r ? answer(r, { skipped: true }) : status("no request selected");
  }

  async function undo() {
    const last = state.undo[state.undo.length - 1];
    if (!last) return status("nothing of yours to undo in this session");
    state.brush = null;
    try {
      await api("DELETE", `/api/answers/${last.request}?annotator=${encodeURIComponent(state.annotator)}`);
    } finally {
      state.undo.pop();  // gone either way: undone now, or no longer there to undo
      saveSession();
    }
    if (last.image !== state.image) await showImage(last.image, true);
    const index = state.requests.findIndex((r) => r.id === last.request);
    if (index >= 0) setAnswer(state.requests[index], null);
    select(index);
    showBanner();
    updateProgress().catch(showError);
    status(`request #${last.request} is open again`);
  }

  // ---- brush ----------------------------------------------------------------------------------------------

  function toggleBrush() {
    if (state.brush) return cancelBrush();
    const r = selectedRequest();
    if (!r || r.kind !== "region") return status("the brush paints regions: select one first (Tab or click)");
    if (r.answer) return status(`request #${r.id} is answered: undo it (Z) to paint it again`);
    const cls = r.suggestion !== null ? r.suggestion : state.lastClass;
    const radius = Math.max(1, Math.round(Math.min(r.width, r.height) / 10));
    state.brush = { request: r, labels: new Uint8Array(r.width * r.height).fill(255), cls, radius, eraser: false };
    paintRegion(r, true);
    renderSide();
    redraw();
  }

  function cancelBrush() {
    const r = state.brush.request;
    state.brush = null;
    paintRegion(r, state.requests[state.selected] === r);
    renderSide();
    redraw();
  }

  // Paint a disc at every half pixel from a to b (image coordinates), inside the requested pixels only.
  function paintStroke(a, b) {
    const { request: r, labels, radius } = state.brush;
    const value = state.brush.eraser ? 255 : state.brush.cls;
    const steps = Math.max(1, Math.ceil(Math.hypot(b.x - a.x, b.y - a.y) * 2));
    for (let s = 0; s <= steps; s++) {
      const cx = a.x + ((b.x - a.x) * s) / steps - r.x;
      const cy = a.y + ((b.y - a.y) * s) / steps - r.y;
      const r2 = radius * radius;
      for (let y = Math.max(0, Math.floor(cy - radius)); y <= Math.min(r.height - 1, Math.floor(cy + radius)); y++) {
        for (let x = Math.max(0, Math.floor(cx - radius)); x <= Math.min(r.width - 1, Math.floor(cx + radius)); x++) {
          const i = y * r.width + x;
          if (r.mask[i] && (x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r2) labels[i] = value;
        }
      }
    }
    paintRegion(r, true);
    redraw();
  }

  function fillBrush() {
    const { request: r, labels, cls } = state.brush;
    for (let i = 0; i < labels.length; i++) if (r.mask[i] && labels[i] === 255) labels[i] = cls;
    paintRegion(r, true);
    redraw();
  }

  async function saveBrush() {
    if (!state.brush) return;
    const { request: r, labels } = state.brush;
    if (!labels.some((v, i) => r.mask[i] && v !== 255)) {
      return status("nothing painted: paint, fill (F) or cancel (Esc)");
    }
    await answer(r, { labels: encodeRuns(labels) });
  }

  // ---- view -----------------------------------------------------------------------------------------------

  function fitView() {
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    const scale = Math.min(w / state.width, h / state.height) * 0.96;
    // `fitted`: refit when the canvas changes size, until the labeller zooms or pans.
    state.view = { scale, ox: (w - state.width * scale) / 2, oy: (h - state.height * scale) / 2, fitted: true };
    redraw();
  }

  function zoomAt(sx, sy, factor) {
    const v = state.view;
    const scale = Math.min(64, Math.max(0.05, v.scale * factor));
    const k = scale / v.scale;
    Object.assign(v, { scale, ox: sx - (sx - v.ox) * k, oy: sy - (sy - v.oy) * k, fitted: false });
    redraw();
  }

  function toImage(p) {
    return { x: (p.x - state.view.ox) / state.view.scale, y: (p.y - state.view.oy) / state.view.scale };
  }

  function toScreen(x, y) {
    return { x: x * state.view.scale + state.view.ox, y: y * state.view.scale + state.view.oy };
  }

  function canvasPoint(event) {
    const rect = canvas.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  }

  // The request under a canvas point: a point within 12 screen pixels, else a region holding the pixel.
  function requestAt(p) {
    let best = -1;
    let bestDistance = 12;
    state.requests.forEach((r, i) => {
      if (r.kind !== "point") return;
      const s = toScreen(r.x + 0.5, r.y + 0.5);
      const d = Math.hypot(s.x - p.x, s.y - p.y);
      if (d < bestDistance) [best, bestDistance] = [i, d];
    });
    if (best >= 0) return best;
    const q = toImage(p);
    return state.requests.findIndex((r) => {
      const x = Math.floor(q.x) - r.x;
      const y = Math.floor(q.y) - r.y;
      return r.kind === "region" && x >= 0 && y >= 0 && x < r.width && y < r.height && r.mask[y * r.width + x];
    });
  }

  let drawPending = false;
  function redraw() {
    if (!drawPending) {
      drawPending = true;
      requestAnimationFrame(() => {
        drawPending = false;
        draw();
      });
    }
  }

  function resizeCanvas() {
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(canvas.clientWidth * dpr);
    canvas.height = Math.round(canvas.clientHeight * dpr);
    if (state.imageEl && state.view.fitted) fitView();
    redraw();
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!state.imageEl) return;
    const v = state.view;
    ctx.setTransform(dpr * v.scale, 0, 0, dpr * v.scale, dpr * v.ox, dpr * v.oy);
    ctx.imageSmoothingEnabled = v.scale < 2;  // zoomed in, show the pixels one labels
    ctx.drawImage(state.imageEl, 0, 0);
    if (state.showPrediction && state.predictionEl) {
      ctx.globalAlpha = 0.5;
      ctx.drawImage(state.predictionEl, 0, 0);
      ctx.globalAlpha = 1;
    }
    ctx.imageSmoothingEnabled = false;
    for (const r of state.requests) if (r.kind === "region") ctx.drawImage(r.canvas, r.x, r.y);

    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    state.requests.forEach((r, i) => {
      if (r.kind === "point") drawPoint(r, i === state.selected);
    });
    const r = selectedRequest();
    if (r && r.kind === "region") {
      const a = toScreen(r.x, r.y);
      ctx.setLineDash([6, 4]);
      ctx.lineWidth = 2;
      ctx.strokeStyle = rgb(SELECTED_COLOUR);
      ctx.strokeRect(a.x - 4, a.y - 4, r.width * v.scale + 8, r.height * v.scale + 8);
      ctx.setLineDash([]);
    }
    if (state.brush && state.pointer) {
      ctx.beginPath();
      ctx.arc(state.pointer.x, state.pointer.y, state.brush.radius * v.scale, 0, 2 * Math.PI);
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = state.brush.eraser ? "#fff" : rgb(classColour(state.brush.cls));
      ctx.stroke();
    }
  }

  function rgb(c) {
    return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
  }

  // Points: a crosshair in a ring when open, a dot of the answer's colour when answered, grey when skipped.
  function drawPoint(r, selected) {
    const { x, y } = toScreen(r.x + 0.5, r.y + 0.5);
    ctx.lineWidth = 2;
    if (selected) {
      ctx.beginPath();
      ctx.arc(x, y, 14, 0, 2 * Math.PI);
      ctx.strokeStyle = rgb(SELECTED_COLOUR);
      ctx.lineWidth = 3;
      ctx.stroke();
      ctx.lineWidth = 2;
    }
    ctx.beginPath();
    ctx.arc(x, y, 8, 0, 2 * Math.PI);
    if (r.state === "answered") {
      ctx.fillStyle = rgb(classColour(r.labels[0]));
      ctx.fill();
    }
    ctx.strokeStyle = r.state === "skipped" ? rgb(SKIPPED_COLOUR) : "#fff";
    ctx.stroke();
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#000";
    ctx.beginPath();
    ctx.arc(x, y, 9.5, 0, 2 * Math.PI);
    ctx.stroke();
    if (r.state === "open") {
      ctx.beginPath();
      for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
        ctx.moveTo(x + dx * 3, y + dy * 3);
        ctx.lineTo(x + dx * 12, y + dy * 12);
      }
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 1.5;
      ctx.stroke();
    }
  }

  // ---- side panel, progress, messages ---------------------------------------------------------------------

  function swatch(c) {
    const span = document.createElement("span");
    span.className = "swatch";
    span.style.background = rgb(c);
    return span;
  }

  function renderPalette() {
    const list = $("palette");
    list.replaceChildren();
    state.meta.classes.forEach((name, c) => {
      const item = document.createElement("li");
      item.dataset.class = c;
      const key = document.createElement("kbd");
      key.textContent = CLASS_KEYS[c] ? CLASS_KEYS[c].toUpperCase() : "";
      item.append(key, swatch(state.meta.palette[c]), document.createTextNode(name));
      item.addEventListener("click", () => enqueue(() => chooseClass(c)));
      list.append(item);
    });
  }

  function requestSummary(r) {
    if (r.state === "open") return "open";
    if (r.state === "skipped") return `skipped (${r.answer.annotator})`;
    const classes = [...new Set(r.labels.filter((v, i) => r.mask[i] && v !== 255))];
    return classes.map(className).join(" + ") + ` (${r.answer.annotator})`;
  }

  function renderSide() {
    const r = selectedRequest();
    const current = $("current");
    current.replaceChildren();
    if (r) {
      const title = document.createElement("h2");
      title.textContent = `Request #${r.id} · ${r.kind}`;
      const where = document.createElement("p");
      where.textContent = r.kind === "point" ? `pixel (${r.x}, ${r.y}) · round ${r.round}`
        : `${r.pixels} pixels in ${r.width}×${r.height} at (${r.x}, ${r.y}) · round ${r.round}`;
      const hint = document.createElement("p");
      hint.textContent = r.suggestion === null ? "no prediction" : `prediction: ${className(r.suggestion)} (Enter)`;
      current.append(title, where, hint);
      if (state.brush) {
        const brush = document.createElement("p");
        brush.className = "brush-state";
        brush.textContent = `Brush: ${state.brush.eraser ? "eraser" : className(state.brush.cls)}, ` +
          `radius ${state.brush.radius} px · F fills · Enter saves · Esc cancels`;
        current.append(brush);
      }
    }
    for (const item of $("palette").children) {
      const c = Number(item.dataset.class);
      item.classList.toggle("suggested", !!r && r.suggestion === c);
      item.classList.toggle("brushing", !!state.brush && !state.brush.eraser && state.brush.cls === c);
    }
    // Listing thousands of small regions (RIPU's 3x3 windows) on every key would be slow: list those around
    // the selected one.
    const list = $("requests");
    list.replaceChildren();
    const n = state.requests.length;
    const from = Math.max(0, Math.min(state.selected - LISTED / 2, n - LISTED));
    const to = Math.min(n, from + LISTED);
    $("requests-note").textContent = n > LISTED ? `${from + 1}–${to} of ${n}` : "";
    state.requests.slice(from, to).forEach((q, k) => {
      const i = from + k;
      const item = document.createElement("li");
      Object.assign(item.dataset, { requestId: q.id, state: q.state, kind: q.kind });
      item.classList.toggle("selected", i === state.selected);
      if (q.state === "answered") {
        const first = q.labels.find((v, k) => q.mask[k] && v !== 255);
        item.append(swatch(classColour(first)));
      }
      item.append(document.createTextNode(`#${q.id} ${q.kind} — ${requestSummary(q)}`));
      item.addEventListener("click", () => {
        if (!state.brush) select(i);
      });
      list.append(item);
    });
    $("image-name").textContent = state.image ? `${state.image} · ${openCount()} open` : "";
    $("brush").setAttribute("aria-pressed", String(!!state.brush));
    $("prediction").setAttribute("aria-pressed", String(state.showPrediction));
  }

  function showBanner() {
    const banner = $("banner");
    banner.hidden = !(state.image && openCount() === 0);
    banner.textContent = "Every request of this image is answered · N: next image · Z: undo";
  }

  function seconds(value) {
    return value === null || value === undefined ? "–" : `${value.toFixed(1)} s`;
  }

  async function updateProgress() {
    const p = await api("GET", `/api/progress?annotator=${encodeURIComponent(state.annotator)}`);
    $("progress-fill").style.width = `${p.total ? (100 * p.answered) / p.total : 0}%`;
    $("progress-text").textContent = `${p.answered} / ${p.total} answered · ${p.skipped} skipped · ` +
      `you: ${p.mine}, ${seconds(p.my_mean_seconds)} per label`;
  }

  // Notes fade after a while; errors stay until the next message.
  let statusTimer = null;
  function status(message, error = false) {
    const line = $("status");
    line.textContent = message;
    line.classList.toggle("error", error);
    clearTimeout(statusTimer);
    if (!error) {
      statusTimer = setTimeout(() => {
        line.textContent = "";
      }, 8000);
    }
  }

  function showError(error) {
    status(error instanceof ApiError ? `${error.status}: ${error.message}` : String(error.message || error), true);
  }

  async function exportAnswers() {
    const result = await api("POST", "/api/export");
    status(`exported ${result.answers} answers and ${result.masks} masks into the request folder's ` +
      `${result.folder}/`);
  }

  // ---- input ----------------------------------------------------------------------------------------------

  function onKey(event) {
    if (!state.meta || event.target.tagName === "INPUT") return;
    const key = event.key;
    const lower = key.length === 1 ? key.toLowerCase() : key;
    if ((event.ctrlKey || event.metaKey) && lower === "z") {
      event.preventDefault();
      return enqueue(undo);
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const commands = {
      ArrowRight: nextImage,
      ArrowLeft: previousImage,
      n: event.shiftKey ? previousImage : nextImage,
      z: undo,
      s: skip,
      p: togglePrediction,
      b: toggleBrush,
      Enter: acceptSuggestion,
      Escape: () => state.brush && cancelBrush(),
      f: () => state.brush && fillBrush(),
      e: () => state.brush && (Object.assign(state.brush, { eraser: !state.brush.eraser }), renderSide()),
      "[": () => state.brush && (state.brush.radius = Math.max(1, state.brush.radius - 1), renderSide()),
      "]": () => state.brush && (state.brush.radius = Math.min(100, state.brush.radius + 1), renderSide()),
      Tab: () => !state.brush && state.requests.length &&
        select((state.selected + (event.shiftKey ? -1 : 1) + state.requests.length) % state.requests.length),
      "+": () => zoomAt(canvas.clientWidth / 2, canvas.clientHeight / 2, 1.25),
      "=": () => zoomAt(canvas.clientWidth / 2, canvas.clientHeight / 2, 1.25),
      "-": () => zoomAt(canvas.clientWidth / 2, canvas.clientHeight / 2, 0.8),
      0: fitView,
    };
    const classIndex = CLASS_KEYS.indexOf(lower);
    const command = commands[lower] ||
      (classIndex >= 0 && classIndex < state.meta.classes.length ? () => chooseClass(classIndex) : null);
    if (command) {
      event.preventDefault();
      enqueue(command);
    }
  }

  function togglePrediction() {
    if (!state.predictionEl) return status("this image has no prediction");
    state.showPrediction = !state.showPrediction;
    renderSide();
    redraw();
  }

  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const p = canvasPoint(event);
    zoomAt(p.x, p.y, Math.exp(-event.deltaY * 0.0015));
  }, { passive: false });

  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    const p = canvasPoint(event);
    if (state.brush && event.button === 0) {
      const q = toImage(p);
      state.drag = { mode: "paint", last: q };
      paintStroke(q, q);
    } else {
      state.drag = { mode: "pan", start: p, ox: state.view.ox, oy: state.view.oy, moved: false };
    }
  });

  canvas.addEventListener("pointermove", (event) => {
    const p = canvasPoint(event);
    state.pointer = p;
    const drag = state.drag;
    if (drag && drag.mode === "paint") {
      const q = toImage(p);
      paintStroke(drag.last, q);
      drag.last = q;
    } else if (drag) {
      drag.moved = drag.moved || Math.hypot(p.x - drag.start.x, p.y - drag.start.y) > 3;
      if (drag.moved) {
        const offset = { ox: drag.ox + p.x - drag.start.x, oy: drag.oy + p.y - drag.start.y };
        Object.assign(state.view, offset, { fitted: false });
      }
    }
    if (drag || state.brush) redraw();
  });

  canvas.addEventListener("pointerup", (event) => {
    const drag = state.drag;
    state.drag = null;
    if (drag && drag.mode === "pan" && !drag.moved && event.button === 0 && !state.brush) {
      const index = requestAt(canvasPoint(event));
      if (index >= 0) select(index);
    }
  });

  canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  document.addEventListener("keydown", onKey);
  new ResizeObserver(resizeCanvas).observe(canvas);

  $("previous").addEventListener("click", () => enqueue(previousImage));
  $("next").addEventListener("click", () => enqueue(nextImage));
  $("prediction").addEventListener("click", () => enqueue(togglePrediction));
  $("brush").addEventListener("click", () => enqueue(toggleBrush));
  $("skip").addEventListener("click", () => enqueue(skip));
  $("undo").addEventListener("click", () => enqueue(undo));
  $("export").addEventListener("click", () => enqueue(exportAnswers));
  // Buttons keep no focus, so Enter and Space stay with the keyboard shortcuts.
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("mousedown", (event) => event.preventDefault());
  }

  // Hand the image back when the tab closes, so another annotator need not wait for the lease to lapse.
  window.addEventListener("pagehide", () => {
    if (!state.meta) return;
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    fetch("/api/release", {
      method: "POST", headers, keepalive: true, body: JSON.stringify({ annotator: state.annotator }),
    });
  });

  // ---- start ----------------------------------------------------------------------------------------------

  async function start() {
    localStorage.setItem("syn2real.annotator", state.annotator);
    $("who").textContent = state.annotator;
    state.meta = await api("GET", "/api/meta");
    renderPalette();
    loadSession();
    if (state.historyPos >= 0) await showImage(state.history[state.historyPos], false);
    else await nextImage();
    renderSide();
    await updateProgress();
    setInterval(heartbeat, (state.meta.lease_seconds * 1000) / 3);
    document.body.dataset.ready = "true";
  }

  function askName() {
    const form = $("login");
    form.hidden = false;
    $("login-name").focus();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      state.annotator = $("login-name").value;
      form.hidden = true;
      enqueue(start);
    });
  }

  if (ANNOTATOR_PATTERN.test(state.annotator)) enqueue(start);
  else askName();
})();
