// seglab workbench: the page. Plain JS, no build step. Talks to the JSON API of seglab.workbench.server.
"use strict";

const $ = (id) => document.getElementById(id);
const S = {
  project: null, classes: [], images: [], sort: "name",
  cur: null,            // {id, width, height, revision, state, objects: [...]}
  img: null,            // HTMLImageElement of the current image
  view: { scale: 1, ox: 0, oy: 0 },
  tool: "sam", classId: 0, selected: -1,
  active: null,         // SAM object being made: {points, labels, box, logitsId, mask, target}
  history: [], future: [],
  saving: false, dirty: false, pendingState: null,
  polygon: [], region: null, drag: null, stroke: null, methods: [],
};
const committed = document.createElement("canvas");   // every kept object, at image resolution
const activeLayer = document.createElement("canvas"); // the SAM mask or brush stroke in progress
const canvas = $("canvas"), ctx = canvas.getContext("2d");
let nextLocalId = -1;

// -- API ------------------------------------------------------------------------------------------
async function api(method, path, body) {
  const opt = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) { opt.headers["Content-Type"] = "application/json"; opt.body = JSON.stringify(body); }
  const resp = await fetch(path, opt);
  let data = null;
  try { data = await resp.json(); } catch (e) { data = { error: `${resp.status} ${resp.statusText}` }; }
  if (!resp.ok) { const err = new Error(data.error || resp.statusText); err.status = resp.status; throw err; }
  return data;
}
const enc = encodeURIComponent;
const imgUrl = (id, what) => `/api/images/${id.split("/").map(enc).join("/")}/${what}`;

function toast(text, kind = "error", ms = 5000) {
  const t = $("toast"); t.textContent = text; t.className = kind; t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, ms);
}

// -- classes --------------------------------------------------------------------------------------
const classIndex = (id) => S.classes.findIndex((c) => c.id === id);
const currentClassId = () => (S.classes[S.classId] ? S.classes[S.classId].id : 1);
function classColor(id) {
  const c = S.classes[classIndex(id)];
  const k = id;
  if (c && c.color) {
    if (Array.isArray(c.color)) return c.color;
    const h = String(c.color).replace("#", "");
    return [parseInt(h.slice(0, 2), 16), parseInt(h.slice(2, 4), 16), parseInt(h.slice(4, 6), 16)];
  }
  const golden = (k * 137.508) % 360;
  return hslToRgb(golden / 360, 0.7, 0.55);
}
function hslToRgb(h, s, l) {
  const f = (n) => { const k = (n + h * 12) % 12, a = s * Math.min(l, 1 - l);
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1)))); };
  return [f(0), f(8), f(4)];
}
const hex = (rgb) => "#" + rgb.map((v) => v.toString(16).padStart(2, "0")).join("");
const classKind = (id) => (S.classes[classIndex(id)] || {}).kind || "thing";

function renderClasses() {
  const ul = $("classes"); ul.innerHTML = "";
  S.classes.forEach((c, k) => {
    const li = document.createElement("li");
    li.className = k === S.classId ? "current" : "";
    li.dataset.k = k;
    li.innerHTML = `<span class="key">${k < 9 ? k + 1 : ""}</span>`;
    const col = document.createElement("input"); col.type = "color"; col.value = hex(classColor(c.id));
    col.oninput = () => { c.color = col.value; renderCommitted(); draw(); };
    const name = document.createElement("input"); name.type = "text"; name.value = c.name; name.setAttribute("aria-label", "class name");
    name.onchange = () => { c.name = name.value; };
    const kind = document.createElement("select");
    kind.innerHTML = `<option value="thing">thing</option><option value="stuff">stuff</option>`;
    kind.value = c.kind || "thing"; kind.onchange = () => { c.kind = kind.value; };
    li.append(col, name, kind);
    li.onclick = (e) => { if (e.target === li || e.target.classList.contains("key")) chooseClass(k); };
    ul.append(li);
  });
}
function chooseClass(k) {
  if (k < 0 || k >= S.classes.length) return;
  S.classId = k;
  if (S.selected >= 0 && S.cur) {  // give the selected object this class
    const o = S.cur.objects[S.selected];
    const id = currentClassId();
    if (o.class_id !== id) edit(S.cur.objects.map((p, i) => (i === S.selected ? { ...p, class_id: id, source: "human", score: null } : p)));
  }
  renderClasses();
}
async function saveClasses() {
  try {
    const out = await api("PUT", "/api/classes", { classes: S.classes });
    S.classes = out.classes; renderClasses(); renderCommitted(); draw();
    toast("classes saved", "info", 1500);
  } catch (e) { toast(e.message); }
}

// -- image list -----------------------------------------------------------------------------------
async function loadImages() {
  const out = await api("GET", `/api/images?sort=${S.sort}`);
  S.images = out.images; renderImages();
}
function renderImages() {
  const ul = $("images"); ul.innerHTML = "";
  const n = { todo: 0, done: 0, review: 0 };
  for (const d of S.images) {
    n[d.state] = (n[d.state] || 0) + 1;
    const li = document.createElement("li");
    li.dataset.id = d.id;
    if (S.cur && d.id === S.cur.id) li.className = "current";
    const unc = d.uncertainty == null ? "" : `<span class="unc">uncertainty ${Number(d.uncertainty).toFixed(3)}</span>`;
    li.innerHTML = `<img loading="lazy" alt="" src="${imgUrl(d.id, "thumbnail")}">
      <div class="meta"><span class="name" title="${d.file}">${d.id}</span>
      <span class="badge ${d.state}">${d.state}</span><span class="unc n">${d.n_objects} objects</span>${unc}</div>`;
    li.onclick = () => openImage(d.id);
    ul.append(li);
  }
  $("counts").textContent = `${n.done} done · ${n.todo} to do · ${n.review} review`;
}
function step(delta) {
  if (!S.images.length) return;
  let k = S.cur ? S.images.findIndex((d) => d.id === S.cur.id) : -1;
  k = Math.max(0, Math.min(S.images.length - 1, k + delta));
  openImage(S.images[k].id);
}

// -- one image ------------------------------------------------------------------------------------
function fromServer(a) {
  return a.objects.map((o) => ({ id: o.id, class_id: o.class_id, source: o.source, score: o.score,
                                 mask: RLE.decode(o.mask), _rle: o.mask }));
}
async function openImage(id) {
  if (S.active) commitActive();
  await flushSave();
  const a = await api("GET", imgUrl(id, "annotation"));
  const img = new Image();
  img.src = imgUrl(id, "image");
  await img.decode();
  S.cur = { id, width: a.width, height: a.height, revision: a.revision, state: a.state, objects: fromServer(a) };
  S.img = img; S.selected = -1; S.active = null; S.history = []; S.future = []; S.polygon = []; S.region = null;
  committed.width = activeLayer.width = a.width; committed.height = activeLayer.height = a.height;
  fit(); renderCommitted(); renderActive(); renderObjects(); renderImages(); renderReview(); draw();
  document.body.dataset.image = id;
  api("POST", imgUrl(id, "embed"), {}).catch(() => {});  // compute SAM's embedding ahead of the first click
}
async function reloadImage(message) {
  const id = S.cur.id;
  S.cur = null;
  await openImage(id);
  if (message) toast(message, "error", 8000);
}

function renderReview() {
  const bar = $("review-bar");
  const d = S.images.find((x) => S.cur && x.id === S.cur.id);
  bar.hidden = !(S.cur && S.cur.state === "review");
  if (!bar.hidden) {
    const u = d && d.uncertainty != null ? ` · uncertainty ${Number(d.uncertainty).toFixed(3)}` : "";
    $("review-text").textContent = `pre-labelled by the model${u}: fix, then accept or reject`;
  }
}

// -- rendering ------------------------------------------------------------------------------------
function paintMask(data, m, rgb, alpha, W) {
  const a = Math.round(alpha * 255), edge = 255;
  for (let r = 0; r < m.h; r++) {
    for (let c = 0; c < m.w; c++) {
      if (!m.data[r * m.w + c]) continue;
      const inner = c > 0 && r > 0 && c < m.w - 1 && r < m.h - 1 && m.data[r * m.w + c - 1] && m.data[r * m.w + c + 1]
        && m.data[(r - 1) * m.w + c] && m.data[(r + 1) * m.w + c];
      const i = ((m.y + r) * W + m.x + c) * 4;
      data[i] = rgb[0]; data[i + 1] = rgb[1]; data[i + 2] = rgb[2]; data[i + 3] = inner ? a : edge;
    }
  }
}
function renderCommitted() {
  if (!S.cur) return;
  const W = S.cur.width, H = S.cur.height, cctx = committed.getContext("2d");
  const im = cctx.createImageData(W, H);
  S.cur.objects.forEach((o, k) => {
    if (S.active && S.active.target === k) return;  // shown by the active layer while it is refined
    paintMask(im.data, o.mask, classColor(o.class_id), k === S.selected ? 0.65 : 0.4, W);
  });
  cctx.putImageData(im, 0, 0);
}
function renderActive(extra) {
  if (!S.cur) return;
  const W = S.cur.width, H = S.cur.height, actx = activeLayer.getContext("2d");
  actx.clearRect(0, 0, W, H);
  const m = extra || (S.active && S.active.mask);
  if (!m || !m.w) return;
  const im = actx.createImageData(W, H);
  paintMask(im.data, m, extra ? [255, 255, 255] : [255, 214, 10], 0.5, W);
  actx.putImageData(im, 0, 0);
}
function fit() {
  const r = canvas.getBoundingClientRect();
  canvas.width = r.width * devicePixelRatio; canvas.height = r.height * devicePixelRatio;
  if (!S.cur) return;
  const s = Math.min(canvas.width / S.cur.width, canvas.height / S.cur.height) * 0.95;
  S.view = { scale: s, ox: (canvas.width - S.cur.width * s) / 2, oy: (canvas.height - S.cur.height * s) / 2 };
}
let drawPending = false;
function draw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => { drawPending = false; drawNow(); });
}
function drawNow() {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!S.cur || !S.img) return;
  const v = S.view;
  ctx.setTransform(v.scale, 0, 0, v.scale, v.ox, v.oy);
  ctx.imageSmoothingEnabled = v.scale < 1;
  ctx.drawImage(S.img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(committed, 0, 0);
  ctx.drawImage(activeLayer, 0, 0);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  const P = (x, y) => [x * v.scale + v.ox, y * v.scale + v.oy];
  if (S.active) {
    S.active.points.forEach(([x, y], i) => {
      const [sx, sy] = P(x, y);
      ctx.beginPath(); ctx.arc(sx, sy, 5, 0, 2 * Math.PI);
      ctx.fillStyle = S.active.labels[i] ? "#2ecc71" : "#e74c3c"; ctx.fill();
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5; ctx.stroke();
    });
    if (S.active.box) strokeBox(S.active.box, "#ffd60a");
  }
  if (S.drag && S.drag.box) strokeBox(S.drag.box, "#ffd60a");
  if (S.region) strokeBox(S.region, "#4ea1ff");
  if (S.polygon.length) {
    ctx.beginPath();
    S.polygon.forEach(([x, y], i) => { const [sx, sy] = P(x, y); i ? ctx.lineTo(sx, sy) : ctx.moveTo(sx, sy); });
    if (S.hover) { const [sx, sy] = P(...S.hover); ctx.lineTo(sx, sy); }
    ctx.strokeStyle = "#4ea1ff"; ctx.lineWidth = 2; ctx.stroke();
  }
  if ((S.tool === "brush" || S.tool === "eraser") && S.hover) {
    const [sx, sy] = P(...S.hover);
    ctx.beginPath(); ctx.arc(sx, sy, brushRadius() * v.scale, 0, 2 * Math.PI);
    ctx.strokeStyle = S.tool === "brush" ? "#fff" : "#ff7b72"; ctx.lineWidth = 1; ctx.stroke();
  }
}
function strokeBox([x0, y0, x1, y1], color) {
  const v = S.view;
  ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.setLineDash([6, 4]);
  ctx.strokeRect(x0 * v.scale + v.ox, y0 * v.scale + v.oy, (x1 - x0) * v.scale, (y1 - y0) * v.scale);
  ctx.setLineDash([]);
}
function renderObjects() {
  const ul = $("objects"); ul.innerHTML = "";
  if (!S.cur) return;
  $("n-objects").textContent = `(${S.cur.objects.length})`;
  const shown = S.cur.objects.length > 300 ? 300 : S.cur.objects.length;
  for (let k = 0; k < shown; k++) {
    const o = S.cur.objects[k];
    const li = document.createElement("li");
    li.className = k === S.selected ? "selected" : "";
    const c = S.classes[classIndex(o.class_id)];
    const cls = c ? c.name : `class ${o.class_id}`;
    const score = o.score == null ? "" : ` ${Number(o.score).toFixed(2)}`;
    li.innerHTML = `<span class="sw" style="background:${hex(classColor(o.class_id))}"></span>
      <span>${k + 1}. ${cls} <span class="help">${o.source || ""}${score}</span></span>`;
    const del = document.createElement("button"); del.className = "del"; del.textContent = "×"; del.title = "delete";
    del.onclick = (e) => { e.stopPropagation(); removeObject(k); };
    li.append(del);
    li.onclick = () => select(k);
    ul.append(li);
  }
}
function select(k) {
  S.selected = k; renderCommitted(); renderObjects(); draw();
}

// -- edits, undo / redo, autosave -----------------------------------------------------------------
function edit(objects) {
  S.history.push(S.cur.objects); S.future = [];
  if (S.history.length > 200) S.history.shift();
  S.cur.objects = objects;
  if (S.selected >= objects.length) S.selected = -1;
  changed();
}
function changed() {
  renderCommitted(); renderObjects(); draw();
  S.dirty = true; scheduleSave();
}
function undo() {
  if (S.active) { cancelActive(); return; }
  if (!S.history.length) return;
  S.future.push(S.cur.objects); S.cur.objects = S.history.pop(); S.selected = -1; changed();
}
function redo() {
  if (!S.future.length) return;
  S.history.push(S.cur.objects); S.cur.objects = S.future.pop(); S.selected = -1; changed();
}
function removeObject(k) {
  edit(S.cur.objects.filter((_, i) => i !== k));
  S.selected = -1; renderCommitted(); renderObjects();
}
function setStatus(text, error = false) {
  const el = $("save-status"); el.textContent = text; el.className = "group" + (error ? " error" : "");
  document.body.dataset.saved = text === "saved" ? "1" : "0";
}
function scheduleSave() { if (!S.saving) save(); }
async function save() {
  if (!S.cur || !S.dirty) return;
  S.saving = true; S.dirty = false;
  const cur = S.cur;
  const body = { base_revision: cur.revision, objects: cur.objects.map((o) => {
    if (!o._rle) o._rle = RLE.encode(o.mask);
    const out = { class_id: o.class_id, mask: o._rle, source: o.source || "human", score: o.score ?? null };
    if (o.id != null && o.id >= 0) out.id = o.id;
    return out;
  }) };
  if (S.pendingState) { body.state = S.pendingState; S.pendingState = null; }
  setStatus("saving…");
  try {
    const out = await api("PUT", imgUrl(cur.id, "annotation"), body);
    cur.revision = out.revision;
    const d = S.images.find((x) => x.id === cur.id);
    if (d) {
      d.revision = out.revision; d.n_objects = cur.objects.length; if (body.state) d.state = body.state;
      const n = document.querySelector(`#images li[data-id="${CSS.escape(cur.id)}"] .n`);
      if (n) n.textContent = `${d.n_objects} objects`;
    }
    if (body.state) { cur.state = body.state; renderImages(); renderReview(); }
    setStatus(S.dirty ? "saving…" : "saved");
  } catch (e) {
    if (e.status === 409) {
      S.saving = false; S.dirty = false;
      setStatus("saved");
      if (S.cur === cur) await reloadImage(`Not saved: ${e.message}`);
      return;
    }
    setStatus("not saved", true); toast(`Not saved: ${e.message}`);
    S.dirty = true; S.saving = false;
    setTimeout(scheduleSave, 3000);
    return;
  }
  S.saving = false;
  if (S.dirty && S.cur === cur) save();
}
async function flushSave() {
  while (S.saving || (S.dirty && S.cur)) {
    if (!S.saving) await save(); else await new Promise((r) => setTimeout(r, 30));
  }
}
function setState(state) {
  if (!S.cur) return;
  S.pendingState = state; S.dirty = true; scheduleSave();
}

// -- coordinates and mouse ------------------------------------------------------------------------
function toImage(e) {
  const r = canvas.getBoundingClientRect();
  const sx = (e.clientX - r.left) * devicePixelRatio, sy = (e.clientY - r.top) * devicePixelRatio;
  return [(sx - S.view.ox) / S.view.scale, (sy - S.view.oy) / S.view.scale, sx, sy];
}
const inside = (x, y) => S.cur && x >= 0 && y >= 0 && x < S.cur.width && y < S.cur.height;
const clampX = (x) => Math.max(0, Math.min(S.cur.width - 1, x));
const clampY = (y) => Math.max(0, Math.min(S.cur.height - 1, y));
const brushRadius = () => Number($("brush-size").value) / 2;

canvas.addEventListener("contextmenu", (e) => e.preventDefault());
canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  const [, , sx, sy] = toImage(e);
  const f = Math.exp(-e.deltaY * 0.0015), v = S.view;
  const s = Math.max(0.05, Math.min(64, v.scale * f)), k = s / v.scale;
  S.view = { scale: s, ox: sx - (sx - v.ox) * k, oy: sy - (sy - v.oy) * k };
  draw();
}, { passive: false });

canvas.addEventListener("mousedown", (e) => {
  if (!S.cur) return;
  canvas.focus();
  const [x, y, sx, sy] = toImage(e);
  const pan = e.button === 1 || (e.button === 0 && (S.spaceDown || S.tool === "select" && !inside(x, y)));
  S.drag = { x, y, sx, sy, button: e.button, alt: e.altKey, pan, moved: false, ox: S.view.ox, oy: S.view.oy };
  if (!pan && (S.tool === "brush" || S.tool === "eraser") && e.button === 0) startStroke(x, y);
});
window.addEventListener("mousemove", (e) => {
  if (!S.cur) return;
  const [x, y, sx, sy] = toImage(e);
  S.hover = [x, y];
  const d = S.drag;
  if (d) {
    if (Math.hypot(sx - d.sx, sy - d.sy) > 4 * devicePixelRatio) d.moved = true;
    if (d.pan) { S.view.ox = d.ox + sx - d.sx; S.view.oy = d.oy + sy - d.sy; }
    else if (S.stroke) extendStroke(x, y);
    else if (d.moved && d.button === 0 && (S.tool === "sam" || S.tool === "method")) {
      d.box = [Math.min(d.x, x), Math.min(d.y, y), Math.max(d.x, x), Math.max(d.y, y)].map((v, i) => (i % 2 ? clampY(v) : clampX(v)));
    }
  }
  if (S.tool !== "sam" || d) draw();
});
window.addEventListener("mouseup", (e) => {
  const d = S.drag; S.drag = null;
  if (!d || !S.cur) return;
  const [x, y] = toImage(e);
  if (d.pan) { draw(); return; }
  if (S.stroke) { endStroke(); return; }
  if (S.tool === "sam") {
    if (d.box) samPrompt({ box: d.box });
    else if (inside(x, y)) samPrompt({ point: [x, y], label: d.button === 2 || d.alt ? 0 : 1 });
  } else if (S.tool === "method") {
    S.region = d.box && d.box[2] - d.box[0] > 2 ? d.box : null;
    $("method-region").textContent = S.region ? `region ${S.region.map(Math.round).join(", ")}` : "whole image";
  } else if (S.tool === "polygon" && d.button === 0 && inside(x, y)) {
    S.polygon.push([x, y]);
  } else if (S.tool === "select" && !d.moved) {
    pick(x, y);
  }
  draw();
});
canvas.addEventListener("dblclick", () => { if (S.tool === "polygon") closePolygon(); });

function pick(x, y) {
  const px = Math.floor(x), py = Math.floor(y);
  for (let k = S.cur.objects.length - 1; k >= 0; k--) {
    if (RLE.contains(S.cur.objects[k].mask, px, py)) { select(k); return k; }
  }
  select(-1); return -1;
}

// -- SAM ------------------------------------------------------------------------------------------
async function samPrompt({ point, label, box }) {
  let seed = null;
  if (!S.active) {  // with an object selected, the clicks refine it; else they make a new one
    const target = S.selected;
    S.active = { points: [], labels: [], box: null, logitsId: null, mask: null, target };
    if (target >= 0) { seed = S.cur.objects[target]; S.active.mask = seed.mask; renderCommitted(); renderActive(); }
  }
  const a = S.active;
  if (point) { a.points.push(point.map((v) => Math.round(v * 10) / 10)); a.labels.push(label); }
  if (box) a.box = box;
  draw();
  const id = S.cur.id;
  const body = { points: a.points, labels: a.labels, box: a.box, previous: a.logitsId };
  if (seed) body.mask = seed._rle || (seed._rle = RLE.encode(seed.mask));
  document.body.dataset.sam = "busy";
  try {
    const out = await api("POST", imgUrl(id, "sam"), body);
    if (S.active !== a || !S.cur || S.cur.id !== id) return;
    a.logitsId = out.logits_id; a.mask = RLE.decode(out.mask); a.score = out.score;
    $("hint").textContent = `SAM: IoU estimate ${out.score.toFixed(2)}, decoder ${out.decoder_ms} ms. Enter keeps it, Esc drops it.`;
    renderActive(); draw();
  } catch (e) {
    toast(e.message);
    if (point) { a.points.pop(); a.labels.pop(); }
    draw();
  } finally { document.body.dataset.sam = "idle"; }
}
function commitActive() {
  const a = S.active;
  S.active = null; renderActive();
  if (!a || !a.mask || !a.mask.w || !a.logitsId) { renderCommitted(); draw(); return; }
  if (a.target >= 0 && a.target < S.cur.objects.length) {  // a refined object keeps its place and class
    edit(S.cur.objects.map((o, i) => (i === a.target ? { ...o, mask: a.mask, _rle: null, source: "human", score: null } : o)));
    select(-1);
    return;
  }
  addMask(a.mask);
}
function cancelActive() { S.active = null; renderActive(); renderCommitted(); draw(); }

// a new object of the current class (a stuff class has one region per image: the mask joins it)
function addMask(mask, batch = null) {
  const objects = batch || S.cur.objects.slice();
  const k = currentClassId();
  if (classKind(k) === "stuff") {
    const j = objects.findIndex((o) => o.class_id === k);
    if (j >= 0) {
      const W = S.cur.width, H = S.cur.height;
      const full = RLE.toFull(objects[j].mask, W, H), add = RLE.toFull(mask, W, H);
      for (let i = 0; i < full.length; i++) full[i] |= add[i];
      objects[j] = { ...objects[j], mask: RLE.fromFull(full, W, H), _rle: null, source: "human", score: null };
      if (!batch) edit(objects);
      return objects;
    }
  }
  objects.push({ id: null, class_id: k, mask, source: "human", score: null });
  if (!batch) { edit(objects); S.selected = -1; }
  return objects;
}

// -- brush and eraser -----------------------------------------------------------------------------
function startStroke(x, y) {
  const W = S.cur.width, H = S.cur.height;
  S.stroke = { full: new Uint8Array(W * H), last: [x, y] };
  stamp(x, y); renderStroke();
}
function stamp(x, y) {
  const W = S.cur.width, H = S.cur.height, r = brushRadius(), f = S.stroke.full;
  for (let py = Math.max(0, Math.floor(y - r)); py <= Math.min(H - 1, Math.ceil(y + r)); py++) {
    for (let px = Math.max(0, Math.floor(x - r)); px <= Math.min(W - 1, Math.ceil(x + r)); px++) {
      if ((px + 0.5 - x) ** 2 + (py + 0.5 - y) ** 2 <= r * r) f[py * W + px] = 1;
    }
  }
}
function extendStroke(x, y) {
  const [lx, ly] = S.stroke.last, n = Math.max(1, Math.ceil(Math.hypot(x - lx, y - ly) / Math.max(1, brushRadius() / 2)));
  for (let i = 1; i <= n; i++) stamp(lx + (x - lx) * i / n, ly + (y - ly) * i / n);
  S.stroke.last = [x, y];
  renderStroke();
}
function renderStroke() {
  const m = RLE.fromFull(S.stroke.full, S.cur.width, S.cur.height);
  renderActive(m || { w: 0 }); draw();
}
function endStroke() {
  const W = S.cur.width, H = S.cur.height, stroke = S.stroke.full;
  S.stroke = null; renderActive();
  const erase = S.tool === "eraser";
  if (!erase && S.active) commitActive();
  const objects = S.cur.objects.slice();
  const targets = S.selected >= 0 ? [S.selected] : (erase ? objects.map((_, i) => i) : []);
  if (!erase && !targets.length) {
    const m = RLE.fromFull(stroke, W, H);
    if (m) { addMask(m); S.selected = S.cur.objects.length - 1; renderCommitted(); renderObjects(); draw(); }
    return;
  }
  let touched = false;
  for (const k of targets) {
    const o = objects[k];
    const full = RLE.toFull(o.mask, W, H);
    let change = false;
    for (let i = 0; i < full.length; i++) {
      if (!stroke[i]) continue;
      const v = erase ? 0 : 1;
      if (full[i] !== v) { full[i] = v; change = true; }
    }
    if (!change) continue;
    touched = true;
    const m = RLE.fromFull(full, W, H);
    objects[k] = m ? { ...o, mask: m, _rle: null, source: "human", score: null } : null;
  }
  if (!touched) { renderCommitted(); draw(); return; }
  const kept = objects.filter((o) => o);
  if (kept.length !== objects.length) S.selected = -1;
  edit(kept);
}

// -- polygon --------------------------------------------------------------------------------------
function closePolygon() {
  if (S.polygon.length < 3) { S.polygon = []; draw(); return; }
  const W = S.cur.width, H = S.cur.height, off = document.createElement("canvas");
  off.width = W; off.height = H;
  const o = off.getContext("2d");
  o.beginPath(); S.polygon.forEach(([x, y], i) => (i ? o.lineTo(x, y) : o.moveTo(x, y))); o.closePath();
  o.fillStyle = "#fff"; o.fill();
  const px = o.getImageData(0, 0, W, H).data, full = new Uint8Array(W * H);
  for (let i = 0; i < full.length; i++) full[i] = px[i * 4 + 3] > 127 ? 1 : 0;
  S.polygon = [];
  const m = RLE.fromFull(full, W, H);
  if (m) addMask(m);
  draw();
}

// -- classical methods: a form generated from each method's description ---------------------------
async function loadMethods() {
  const out = await api("GET", "/api/methods");
  S.methods = out.methods;
  const sel = $("method-name"); sel.innerHTML = "";
  for (const m of S.methods) {
    const o = document.createElement("option"); o.value = m.name; o.textContent = `${m.name} (${m.family})`; sel.append(o);
  }
  sel.onchange = renderMethodForm; renderMethodForm();
}
function renderMethodForm() {
  const m = S.methods.find((x) => x.name === $("method-name").value);
  const form = $("method-form"); form.innerHTML = "";
  if (!m) return;
  $("method-help").textContent = `${m.description} — ${m.reference}`;
  for (const p of m.params) {
    const label = document.createElement("label"); label.title = p.help;
    label.append(`${p.name} `);
    let input;
    if (p.choices) {
      input = document.createElement("select");
      for (const c of p.choices) { const o = document.createElement("option"); o.value = JSON.stringify(c); o.textContent = String(c); input.append(o); }
      input.value = JSON.stringify(p.default);
    } else if (p.type === "bool") {
      input = document.createElement("input"); input.type = "checkbox"; input.checked = !!p.default;
    } else if (p.type === "int" || p.type === "float") {
      input = document.createElement("input"); input.type = "number";
      input.step = p.type === "int" ? "1" : "any";
      if (p.range) { if (p.range[0] != null) input.min = p.range[0]; if (p.range[1] != null) input.max = p.range[1]; }
      input.value = p.default == null ? "" : p.default; input.placeholder = p.default == null ? "none" : "";
    } else {
      input = document.createElement("input"); input.type = "text"; input.value = p.default ?? "";
    }
    input.name = p.name; input.dataset.type = p.type;
    label.append(input);
    const help = document.createElement("div"); help.className = "help"; help.textContent = p.help;
    label.append(help);
    form.append(label);
  }
}
function methodParams() {
  const params = {};
  for (const el of $("method-form").elements) {
    const t = el.dataset.type;
    if (el.tagName === "SELECT") params[el.name] = JSON.parse(el.value);
    else if (t === "bool") params[el.name] = el.checked;
    else if (t === "int" || t === "float") { if (el.value !== "") params[el.name] = Number(el.value); }
    else params[el.name] = el.value;
  }
  return params;
}
async function runMethod() {
  if (!S.cur) return;
  const body = { method: $("method-name").value, params: methodParams(), drop_background: $("method-drop-bg").checked };
  if (S.region) body.region = S.region.map(Math.round);
  $("method-run").disabled = true;
  try {
    const out = await api("POST", imgUrl(S.cur.id, "segment"), body);
    let objects = S.cur.objects.slice();
    for (const r of out.masks) objects = addMask(RLE.decode(r), objects);
    edit(objects);
    toast(`${body.method}: ${out.masks.length} segments in ${out.seconds} s`, "info", 2500);
  } catch (e) { toast(e.message); }
  finally { $("method-run").disabled = false; }
}

// -- the loop: train, predict, review; export -----------------------------------------------------
async function startJob(path, body) {
  try {
    const job = await api("POST", path, body || {});
    pollJob(job.id);
  } catch (e) { toast(e.message); }
}
async function pollJob(id) {
  $("job").hidden = false; fit(); draw();
  for (;;) {
    let j;
    try { j = await api("GET", `/api/jobs/${id}`); } catch (e) { toast(e.message); return; }
    const metric = Object.entries(j.metrics || {}).map(([k, v]) => `${k} ${Number(v).toFixed(3)}`).join(" · ");
    $("job-text").textContent = `${j.kind}: ${j.state} — ${j.message}${metric ? " — " + metric : ""}`;
    $("job-progress").value = j.progress;
    $("job-stop").hidden = j.state !== "running";
    $("job-stop").onclick = () => api("POST", `/api/jobs/${id}/cancel`, {}).catch((e) => toast(e.message));
    document.body.dataset.job = `${j.kind}:${j.state}`;
    if (j.state !== "running") {
      if (j.state === "failed") toast(`${j.kind} failed: ${j.message}`, "error", 10000);
      if (j.state === "cancelled") toast(`${j.kind} stopped`, "info", 4000);
      await loadImages();
      if (S.cur) { const cur = S.images.find((d) => d.id === S.cur.id); if (cur && cur.revision !== S.cur.revision) await reloadImage(); }
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
async function review(accept) {
  if (!S.cur) return;
  if (S.active) commitActive();
  if (!accept) {
    const kept = S.cur.objects.filter((o) => o.source !== "model");
    if (kept.length !== S.cur.objects.length) edit(kept);
  }
  setState(accept ? "done" : "todo");
  await flushSave();
  S.cur.state = accept ? "done" : "todo"; renderReview(); renderImages();
  const next = S.images.find((d) => d.state === "review" && d.id !== S.cur.id);
  if (next) openImage(next.id);
}
async function exportAs() {
  const format = $("export-format").value;
  try {
    await flushSave();
    const out = await api("POST", "/api/export", { format });
    toast(`exported ${format.toUpperCase()} to ${out.path} in the project folder`, "info", 6000);
  } catch (e) { toast(e.message); }
}

// -- tools and keys -------------------------------------------------------------------------------
const HINTS = {
  sam: "Click an object (right-click or Alt+click: background; drag: box). More clicks refine; with an object selected, clicks refine it. Enter keeps it.",
  brush: "Paint onto the selected object (or a new one). Size with the slider or [ ].",
  eraser: "Erase from the selected object (or from every object).",
  polygon: "Click the corners; double-click or Enter closes the polygon.",
  method: "Drag a region (or none: the whole image), set the parameters, Run.",
  select: "Click an object to select it (Delete removes it; a class key changes its class); drag to pan.",
};
function setTool(t) {
  if (S.active && t !== "sam") commitActive();
  S.tool = t; S.polygon = [];
  for (const b of document.querySelectorAll("#tools button")) b.classList.toggle("active", b.dataset.tool === t);
  $("method-panel").hidden = t !== "method";
  $("hint").textContent = HINTS[t];
  canvas.style.cursor = t === "select" ? "default" : "crosshair";
  draw();
}
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  const k = e.key.toLowerCase();
  if ((e.ctrlKey || e.metaKey) && k === "z") { e.preventDefault(); e.shiftKey ? redo() : undo(); return; }
  if ((e.ctrlKey || e.metaKey) && k === "y") { e.preventDefault(); redo(); return; }
  if (e.ctrlKey || e.metaKey) return;
  if (k === " ") { S.spaceDown = true; e.preventDefault(); return; }
  if (k === "arrowright" || k === "arrowdown") { e.preventDefault(); step(1); }
  else if (k === "arrowleft" || k === "arrowup") { e.preventDefault(); step(-1); }
  else if (k === "enter") { if (S.tool === "polygon") closePolygon(); else commitActive(); }
  else if (k === "escape") { if (S.active) cancelActive(); S.polygon = []; S.region = null; select(-1); }
  else if (k === "delete" || k === "backspace") { if (S.selected >= 0) removeObject(S.selected); }
  else if (k === "s") setTool("sam"); else if (k === "b") setTool("brush"); else if (k === "e") setTool("eraser");
  else if (k === "p") setTool("polygon"); else if (k === "m") setTool("method"); else if (k === "v") setTool("select");
  else if (k === "d") setState("done");
  else if (k === "f" || k === "0") { fit(); draw(); }
  else if (k === "[" || k === "]") { const b = $("brush-size"); b.value = Number(b.value) + (k === "]" ? 2 : -2); draw(); }
  else if (/^[1-9]$/.test(k)) chooseClass(Number(k) - 1);
});
document.addEventListener("keyup", (e) => { if (e.key === " ") S.spaceDown = false; });
window.addEventListener("resize", () => { fit(); draw(); });
window.addEventListener("beforeunload", (e) => { if (S.dirty || S.saving) { e.preventDefault(); e.returnValue = ""; } });

for (const b of document.querySelectorAll("#tools button")) b.onclick = () => setTool(b.dataset.tool);
$("undo").onclick = undo; $("redo").onclick = redo; $("commit").onclick = commitActive;
$("mark-done").onclick = () => setState("done");
$("accept").onclick = () => review(true); $("reject").onclick = () => review(false);
$("train").onclick = async () => {
  await flushSave();
  startJob("/api/train", { options: { max_minutes: Number($("train-minutes").value) } });
}; $("predict").onclick = async () => { await flushSave(); startJob("/api/predict"); };
$("export").onclick = exportAs; $("method-run").onclick = (e) => { e.preventDefault(); runMethod(); };
$("sort").onchange = async () => { S.sort = $("sort").value; await loadImages(); };
$("add-class").onclick = () => {
  const id = Math.max(0, ...S.classes.map((c) => c.id)) + 1;
  S.classes.push({ id, name: `class ${id}`, kind: "thing", color: hex(classColor(id)) }); renderClasses();
};
$("save-classes").onclick = saveClasses;
$("task").onchange = async () => {
  try { await api("PUT", "/api/task", { task: $("task").value }); toast(`task: ${$("task").value}`, "info", 1500); }
  catch (e) { toast(e.message); }
};
$("upload").onchange = async (e) => {
  for (const f of e.target.files) {
    const resp = await fetch(`/api/upload?name=${enc(f.name)}`, { method: "POST", body: f, credentials: "same-origin",
      headers: { "Content-Type": f.type || "application/octet-stream" } });
    if (!resp.ok) toast((await resp.json().catch(() => ({}))).error || `${f.name}: upload failed`);
  }
  e.target.value = "";
  await loadImages();
  if (!S.cur && S.images.length) openImage(S.images[0].id);
};

async function start() {
  try {
    S.project = await api("GET", "/api/project");
    $("project-name").textContent = S.project.name;
    document.title = `${S.project.name} · seglab workbench`;
    S.classes = S.project.classes;
    $("task").value = S.project.task || "instance";
    renderClasses(); setTool("sam");
    await loadImages();
    loadMethods().catch((e) => toast(e.message));
    const running = (await api("GET", "/api/jobs")).jobs.filter((j) => j.state === "running");
    if (running.length) pollJob(running[0].id);
    if (S.images.length) await openImage(S.images[0].id);
    document.body.dataset.ready = "1";
  } catch (e) { toast(e.message, "error", 60000); }
}
start();
