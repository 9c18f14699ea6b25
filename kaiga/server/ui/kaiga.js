// kaiga's web UI. Plain JavaScript over the server's public API, nothing the API does not also offer:
//   generate: POST /v1/jobs, then GET /v1/jobs/{id} for progress and the images
//   edit:     POST /v1/images/edits (multipart; painted pixels become transparent in the mask, OpenAI's
//             convention), progress from GET /sdapi/v1/progress while it runs
//   gallery:  /v1/gallery/images (search, favourites, ratings, delete, re-run, export)
//   live:     the /v1/live websocket: the generate form's fields sent as they change, frames drawn as they come
//   forms:    GET /v1/schema/request (each request input's range, default and choices), GET /v1/models (what
//             each model can do: sizes, samplers, family options, default steps and guidance; `kaiga`)
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
const POLL_MS = 250;

// ---- API ------------------------------------------------------------------------------------------
function authHeaders() {
  const key = localStorage.getItem("kaiga-api-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path, options = {}) {
  return (await apiResponse(path, options)).data;
}

async function apiResponse(path, { method = "GET", body, form } = {}) {
  // The answer's JSON and its headers (X-Kaiga-Job-Id names the job behind an OpenAI-style answer).
  const headers = authHeaders();
  let payload;
  if (form) payload = form;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  const response = await fetch(path, { method, headers, body: payload });
  if (response.status === 401) $(".key").hidden = false;  // the server wants a key: ask for one
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const message = data?.error?.message ?? data?.detail ?? `${response.status} ${response.statusText}`;
    throw new Error(typeof message === "string" ? message : JSON.stringify(message));
  }
  return { data, headers: response.headers };
}

function showError(error) {
  const box = $("#error");
  box.textContent = error ? String(error.message ?? error) : "";
  box.hidden = !error;
}

// ---- shared pieces -------------------------------------------------------------------------------
function formFields(form) {
  // The form's filled-in fields as a request: numbers as numbers, empty fields left to the server's defaults.
  const fields = {};
  for (const [name, value] of new FormData(form)) {
    if (value === "" || value instanceof File) continue;
    const input = form.elements[name];
    fields[name] = input.type === "number" ? Number(value) : value;
  }
  return fields;
}

function dataUrl(file) {
  // A chosen file as a data: URL (base64), as the APIs take an image in JSON.
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`${file.name}: cannot be read`));
    reader.readAsDataURL(file);
  });
}

function slug(text, n = 40) {
  // A file-name word for a prompt: ASCII letters and digits joined by '-' (accents dropped, the rest left out).
  return text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase().replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "").slice(0, n).replace(/-+$/, "");
}

function fileName(image) {
  // kaiga-<seed>-<prompt>-<8 hex of the file's SHA-256>.png: readable, and never the same for two images.
  const record = image.record ?? {};
  const sha = image.sha256 ?? image.url.split("/").pop().replace(".png", "");
  return ["kaiga", record.seed, slug(record.prompt ?? ""), sha.slice(0, 8)].filter((p) => p !== undefined && p !== "")
    .join("-") + ".png";
}

function button(text, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.addEventListener("click", (event) => { event.stopPropagation(); onClick(); });
  return b;
}

function imageActions(image) {
  // Download (the PNG as stored: its record, watermark and credentials inside), Send to edit, Use these settings.
  const download = document.createElement("a");
  download.className = "download";
  download.href = image.url;
  download.download = fileName(image);
  download.textContent = "Download";
  download.addEventListener("click", (event) => event.stopPropagation());
  const actions = document.createElement("div");
  actions.className = "card-actions";
  actions.append(download, button("Send to edit", () => sendToEdit(image)));
  if (image.record) actions.append(button("Use these settings", () => useSettings(image.record)));
  if (image.id !== undefined) {  // a gallery image: Midjourney's vary, zoom out and pan, queued as edit jobs
    const remixes = document.createElement("div");
    remixes.className = "remix-actions";
    for (const [text, path, body, title] of REMIXES) {
      const b = button(text, () => remix(image, path, body));
      b.title = title;
      b.dataset.remix = `${path}-${Object.values(body).join("-")}`;
      remixes.append(b);
    }
    const up = button("Upscale 4×", () => upscaleImage(image));
    up.title = "Enlarge 4× with the learned upscaler (a new gallery image)";
    up.dataset.remix = "upscale-4";
    const describe = button("Describe", () => describeImage(image));
    describe.title = "Prompts that would make this image again, read by the scenes judge (Midjourney's /describe)";
    describe.dataset.remix = "describe";
    const pick = button(blendPicks.has(image.id) ? "✓ Blend" : "+ Blend", () => pickForBlend(image, pick));
    pick.title = "Choose 2 to 4 images, then Blend (at the top) mixes them";
    pick.dataset.remix = "blend-pick";
    remixes.append(up, describe, pick);
    actions.append(remixes);
  }
  return actions;
}

// [label, endpoint, body, tooltip] of the buttons under every gallery image (POST /v1/gallery/images/{id}/...).
const REMIXES = [
  ["Vary (subtle)", "vary", { strength: "subtle" }, "Variations that keep the composition and most detail"],
  ["Vary (strong)", "vary", { strength: "strong" }, "Variations that keep the layout and colours"],
  ["Zoom out 2×", "zoom", { factor: 2 }, "Shrink into the middle and paint the border around it"],
  ["←", "pan", { direction: "left" }, "Pan left: move the view, paint what comes into it"],
  ["→", "pan", { direction: "right" }, "Pan right"],
  ["↑", "pan", { direction: "up" }, "Pan up"],
  ["↓", "pan", { direction: "down" }, "Pan down"],
];

async function remix(image, path, body) {
  // Queue the remix of a gallery image and show its results in the generate tab.
  selectTab("generate");
  const panel = $("#generate");
  try {
    setProgress(panel, 0, `${path} of seed ${image.record?.seed ?? ""}: queued`);
    const job = await api(`/v1/gallery/images/${image.id}/${path}`, { method: "POST", body: { n: 4, ...body } });
    const done = await followJob(job, panel);
    $(".results", panel).replaceChildren(...done.images.map((im) => figure(im, openDetails)));
    setProgress(panel, null, `${done.images.length} image(s): ${job.remix}`);
    showUnknownWords(panel, done);
  } catch (e) { showError(e); }
}

// ---- blend: 2-4 gallery images chosen with "+ Blend", mixed by POST /v1/gallery/images/blend -------------
const MAX_BLEND = 4;
const blendPicks = new Map();  // gallery id -> image, in the order chosen

function pickForBlend(image, pick) {
  if (blendPicks.has(image.id)) blendPicks.delete(image.id);
  else if (blendPicks.size < MAX_BLEND) blendPicks.set(image.id, image);
  else { showError(new Error(`blend: at most ${MAX_BLEND} images; clear one first`)); return; }
  pick.textContent = blendPicks.has(image.id) ? "✓ Blend" : "+ Blend";
  showBlendBar();
}

function showBlendBar() {
  const bar = $("#blend-bar");
  bar.hidden = blendPicks.size === 0;
  $(".blend-count", bar).textContent = `${blendPicks.size} of 2–${MAX_BLEND} images chosen to blend`;
  $("#blend-go").disabled = blendPicks.size < 2;
}

function clearBlend() {
  blendPicks.clear();
  for (const b of $$("[data-remix=blend-pick]")) b.textContent = "+ Blend";
  showBlendBar();
}

async function runBlend() {
  // Queue the blend of the chosen images and show its results in the generate tab, as a remix's.
  const ids = [...blendPicks.keys()];
  selectTab("generate");
  const panel = $("#generate");
  try {
    setProgress(panel, 0, `blend of ${ids.length} images: queued`);
    const job = await api("/v1/gallery/images/blend", { method: "POST", body: { images: ids, n: 4 } });
    clearBlend();
    const done = await followJob(job, panel);
    $(".results", panel).replaceChildren(...done.images.map((im) => figure(im, openDetails)));
    setProgress(panel, null, `${done.images.length} image(s): ${job.remix}`);
    showUnknownWords(panel, done);
  } catch (e) { showError(e); }
}

async function upscaleImage(image) {
  // POST /v1/gallery/images/{id}/upscale answers at once with the new gallery image; shown in the generate tab.
  selectTab("generate");
  const panel = $("#generate");
  try {
    setProgress(panel, 0, `upscaling seed ${image.record?.seed ?? ""}`);
    const big = await api(`/v1/gallery/images/${image.id}/upscale`, { method: "POST", body: { factor: 4 } });
    $(".results", panel).replaceChildren(figure(big, openDetails));
    setProgress(panel, null, `upscaled ×${big.record?.upscale ?? 4} (${big.record?.extra?.upscaler ?? ""})`);
  } catch (e) { showError(e); }
}

async function describeImage(image) {
  // The image's own PNG to A1111's /sdapi/v1/interrogate (kaiga's describe); the prompts in the status line.
  const panel = $("#generate");
  try {
    setProgress(panel, 0, "describing");
    const blob = await (await fetch(image.url, { headers: authHeaders() })).blob();
    const encoded = await new Promise((resolve) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.readAsDataURL(blob);
    });
    const d = await api("/sdapi/v1/interrogate", { method: "POST", body: { image: encoded } });
    const sure = d.low_confidence ? ` (low confidence ${d.confidence}: not much like a scenes image)` : "";
    setProgress(panel, null, `describe: ${d.prompts.join(" | ")}${sure}`);
  } catch (e) { showError(e); }
}

function figure(image, onClick) {
  const fig = document.createElement("figure");
  const img = document.createElement("img");
  img.src = image.url;
  img.alt = image.record?.prompt ?? image.prompt ?? "";
  const caption = document.createElement("figcaption");
  const seed = image.record?.seed;
  caption.textContent = seed === undefined ? img.alt : `seed ${seed} · ${img.alt}`;
  fig.append(img, caption, imageActions(image));
  img.addEventListener("click", () => onClick(image));
  caption.addEventListener("click", () => onClick(image));
  return fig;
}

function setProgress(panel, fraction, text) {
  const bar = $("progress", panel);
  bar.hidden = fraction === null;
  if (fraction !== null) bar.value = fraction;
  $(".status-text", panel).textContent = text;
}

function showUnknownWords(panel, job) {
  // The words the model did not know and ignored (the job's unknown_words): said, never dropped silently.
  const line = $(".unknown-words", panel), words = job?.unknown_words ?? [];
  line.textContent = words.length ? `The model does not know these words and ignored them: ${words.join(", ")}` : "";
  line.hidden = !words.length;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- generate ------------------------------------------------------------------------------------
let currentJob = null;

async function followJob(job, panel) {
  // Poll a job to its end; returns it when done, throws when it failed or was cancelled.
  while (!["done", "failed", "cancelled"].includes(job.status)) {
    const where = job.status === "pending" ? "waiting in the queue" : `step ${Math.round(job.progress * 100)}%`;
    setProgress(panel, job.progress, where);
    await sleep(POLL_MS);
    job = await api(`/v1/jobs/${job.id}`);
  }
  if (job.status !== "done") throw new Error(`job ${job.status}${job.error ? ": " + job.error : ""}`);
  return job;
}

async function runJob(request, panel) {
  // Submit a job and follow it, with the Cancel button shown meanwhile.
  const job = await api("/v1/jobs", { method: "POST", body: request });
  currentJob = job.id;
  $(".cancel", panel).hidden = false;
  try {
    return await followJob(job, panel);
  } finally {
    currentJob = null;
    $(".cancel", panel).hidden = true;
  }
}

async function generate(event) {
  event.preventDefault();
  const form = event.target, panel = $("#generate");
  const { size, grid_x: x, grid_y: y, personalise, live: _, ...request } = formFields(form);  // `style`: a mix of library styles
  const native = modelInfo(form)?.native_size;
  const [width, height] = (size ?? "").split("x").map(Number);
  if (size && !(width === native && height === native)) [request.width, request.height] = [width, height];
  showError(null);
  $("button[type=submit]", form).disabled = true;
  $(".results", panel).replaceChildren();
  showUnknownWords(panel, null);
  setProgress(panel, 0, "submitting");
  try {
    const started = performance.now();
    const reference = form.elements.sref_file.files[0];
    if (reference && x) throw new Error("Style reference: an X/Y plot takes none; put style on an axis");
    if (reference) request.sref = await dataUrl(reference);  // POST /v1/jobs reads its style (as OpenAI's sref)
    if (personalise && x) throw new Error("Personalise: an X/Y plot compares settings; leave one of them out");
    if (personalise) request.personalize = tasteState.person;  // the server learns the taste when it runs the job
    if (x) { await runGrid(request, x, y, panel, started); return; }
    const job = await runJob(request, panel);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    setProgress(panel, null, `${job.images.length} image(s) in ${seconds} s`);
    showUnknownWords(panel, job);
    $(".results", panel).append(...job.images.map((im) => figure(im, openDetails)));
  } catch (e) {
    setProgress(panel, null, "");
    showError(e);
  } finally {
    $("button[type=submit]", form).disabled = false;
  }
}

async function runGrid(request, x, y, panel, started) {
  // POST /v1/grids (A1111's X/Y plot): every cell a gallery image, the labelled sheet first; one image a cell.
  delete request.n;
  setProgress(panel, 0, `X/Y plot: ${x}${y ? ` × ${y}` : ""}`);
  const plot = await api("/v1/grids", { method: "POST", body: { ...request, x, ...(y ? { y } : {}) } });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  setProgress(panel, null, `X/Y plot: ${plot.cells.length} cell(s) and ${plot.sheets.length} sheet in ${seconds} s`);
  const sheets = plot.sheets.map((im) => figure(im, openDetails));
  for (const s of sheets) s.classList.add("sheet");
  $(".results", panel).append(...sheets, ...plot.cells.map((im) => figure(im, openDetails)));
}

// ---- live preview --------------------------------------------------------------------------------
// The form's fields go to /v1/live on every change (the server debounces the typing and skips frames whose
// prompt barely moved); each frame replaces the picture, its caption says its time and the latency since the
// last change was sent.
const live = { socket: null, sentAt: 0, frames: [] };
const NOT_LIVE = ["n", "size", "personalise", "grid_x", "grid_y", "live", "sref_file"];

function liveFields(form) {
  // Every field of the form, null where it is empty (back to the model's default), the size as width and height.
  const fields = {};
  for (const input of form.elements) {
    if (!input.name || NOT_LIVE.includes(input.name) || input.type === "file" || input.type === "checkbox") continue;
    const value = input.value;
    fields[input.name] = value === "" ? null : input.type === "number" ? Number(value) : value;
  }
  const [width, height] = (form.elements.size.value ?? "").split("x").map(Number);
  const native = modelInfo(form)?.native_size;
  [fields.width, fields.height] = width && !(width === native && height === native) ? [width, height] : [null, null];
  return fields;
}

function sendLive() {
  const form = $("#generate-form");
  if (!live.socket || live.socket.readyState !== WebSocket.OPEN || !form.elements.prompt.value.trim()) return;
  live.sentAt = performance.now();
  live.socket.send(JSON.stringify(liveFields(form)));
}

function liveMessage(event) {
  const message = JSON.parse(event.data), status = $("#generate .live-status");
  if (message.type === "ready") { status.textContent = "live: type a prompt"; sendLive(); return; }
  if (message.type === "error") { status.textContent = `live: ${message.error}`; return; }
  if (message.type === "skipped") { status.textContent = `live: frame ${message.frame} skipped (${message.reason})`; return; }
  const now = performance.now();
  live.frames = [...live.frames.slice(-9), now];
  const span = (live.frames.at(-1) - live.frames[0]) / 1000, fps = span > 0 ? (live.frames.length - 1) / span : 0;
  const img = $("#generate .live-image");
  img.src = `data:image/png;base64,${message.image}`;
  img.alt = message.record.prompt;
  img.dataset.frame = message.frame;
  img.dataset.latencyMs = Math.round(now - live.sentAt);
  const unknown = message.record.extra?.unknown_words ?? [];
  status.textContent = `live: frame ${message.frame} · ${Math.round(message.ms)} ms to draw · ` +
    `${Math.round(now - live.sentAt)} ms since the last change · ${fps.toFixed(1)} fps` +
    (unknown.length ? ` · not known, ignored: ${unknown.join(", ")}` : "");
}

function toggleLive(on) {
  const box = $("#generate .live");
  box.hidden = !on;
  if (!on) { live.socket?.close(); live.socket = null; return; }
  const key = localStorage.getItem("kaiga-api-key");
  // a browser cannot send an Authorization header to a websocket: the key rides as a subprotocol
  const protocols = key ? ["kaiga.v1", `kaiga.bearer.${key}`] : ["kaiga.v1"];
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/live`;
  live.socket = new WebSocket(url, protocols);
  live.frames = [];
  $("#generate .live-status").textContent = "connecting…";
  live.socket.addEventListener("message", liveMessage);
  live.socket.addEventListener("close", (event) => {
    if (event.code === 1008) { $(".key").hidden = false; }
    if (live.socket === event.target) $("#generate .live-status").textContent =
      `live: disconnected${event.reason ? ` (${event.reason})` : ""}`;
  });
}

// ---- edit ----------------------------------------------------------------------------------------
const editState = { image: null, painted: false };

function loadEditImage(blob) {
  const url = URL.createObjectURL(blob);
  const img = new Image();
  img.onload = () => {
    // Both canvases hold the image's own pixels, so the mask is painted (and sent) at the image's size; CSS
    // stretches them over the box, whose aspect is the image's, and the brush maps the pointer back.
    const canvas = $("#edit-image");
    canvas.width = $("#edit-mask").width = img.naturalWidth;
    canvas.height = $("#edit-mask").height = img.naturalHeight;
    $(".canvas-box").style.aspectRatio = `${img.naturalWidth} / ${img.naturalHeight}`;
    canvas.getContext("2d").drawImage(img, 0, 0);
    clearMask();
    editState.image = blob;
    URL.revokeObjectURL(url);
  };
  img.src = url;
}

function clearMask() {
  const mask = $("#edit-mask");
  mask.getContext("2d").clearRect(0, 0, mask.width, mask.height);
  editState.painted = false;
}

function setUpBrush() {
  const mask = $("#edit-mask");
  let drawing = false;
  const paint = (event) => {
    if (!drawing) return;
    const box = mask.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * mask.width;
    const y = ((event.clientY - box.top) / box.height) * mask.height;
    // The brush slider is in screen pixels of the box; scale it to the image's pixels.
    const radius = (Number($("#edit-form").elements.brush.value) / 2) * (mask.width / box.width);
    const ctx = mask.getContext("2d");
    ctx.fillStyle = "rgb(255, 64, 64)";
    ctx.beginPath();
    ctx.arc(x, y, radius, 0, 2 * Math.PI);
    ctx.fill();
    editState.painted = true;
  };
  mask.addEventListener("pointerdown", (e) => { drawing = true; mask.setPointerCapture(e.pointerId); paint(e); });
  mask.addEventListener("pointermove", paint);
  mask.addEventListener("pointerup", () => { drawing = false; });
}

function maskBlob() {
  // OpenAI's mask: the image's size, fully transparent where it is to be repainted, opaque elsewhere.
  const painted = $("#edit-mask");
  const out = document.createElement("canvas");
  out.width = painted.width;
  out.height = painted.height;
  const ctx = out.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.globalCompositeOperation = "destination-out";  // painted pixels punch holes
  ctx.drawImage(painted, 0, 0);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

async function followProgress(panel, until) {
  // The A1111 progress endpoint reports the running job; poll it until the edit's request settles.
  let settled = false;
  until.finally(() => { settled = true; });
  while (!settled) {
    try {
      const p = await api("/sdapi/v1/progress?skip_current_image=true");
      setProgress(panel, p.progress, p.progress > 0 ? `step ${Math.round(p.progress * 100)}%` : "waiting");
    } catch { /* progress is a nicety: the edit's own answer decides */ }
    await sleep(POLL_MS);
  }
}

async function runEdit(event) {
  event.preventDefault();
  const form = event.target, panel = $("#edit");
  showError(null);
  if (!editState.image) { showError("choose an image to edit first"); return; }
  const { brush, mask_blur: blur, ...fields } = formFields(form);
  const body = new FormData();
  body.append("image", editState.image, "image.png");
  if (editState.painted) body.append("mask", await maskBlob(), "mask.png");
  if (editState.painted && blur) body.append("mask_blur", blur);  // a blur without a mask is refused
  body.append("prompt", fields.prompt ?? "");
  body.append("response_format", "url");
  delete fields.prompt;
  for (const [name, value] of Object.entries(fields)) body.append(name, value);
  $("button[type=submit]", form).disabled = true;
  $(".results", panel).replaceChildren();
  showUnknownWords(panel, null);
  try {
    const request = apiResponse("/v1/images/edits", { method: "POST", form: body });
    followProgress(panel, request);
    const { data: answer, headers } = await request;
    // The job behind the answer has each image's record (its seed above all), as a generate job does.
    const job = await api(`/v1/jobs/${headers.get("x-kaiga-job-id")}`);
    setProgress(panel, null, `${answer.data.length} image(s)`);
    showUnknownWords(panel, job);
    $(".results", panel).append(...job.images.map((im) => figure(im, openDetails)));
  } catch (e) {
    setProgress(panel, null, "");
    showError(e);
  } finally {
    $("button[type=submit]", form).disabled = false;
  }
}

// ---- gallery -------------------------------------------------------------------------------------
let galleryCursor = null;

async function loadGallery(append = false) {
  const form = $("#gallery-form");
  const params = new URLSearchParams({ limit: "24" });
  if (form.elements.q.value) params.set("q", form.elements.q.value);
  if (form.elements.favourite.checked) params.set("favourite", "true");
  if (form.elements.held.checked) params.set("held", "true");
  $("#export").href = `/v1/gallery/export?${params.toString().replace(/(^|&)limit=\d+/, "")}`;
  if (append && galleryCursor) params.set("cursor", galleryCursor);
  try {
    const page = await api(`/v1/gallery/images?${params}`);
    const grid = $("#gallery .results");
    if (!append) grid.replaceChildren();
    grid.append(...page.data.map((im) => withReview(figure(im, openDetails), im)));
    galleryCursor = page.next_cursor;
    $("#more").hidden = !galleryCursor;
    if (!append && page.total === 0) grid.textContent = "No images yet.";
  } catch (e) { showError(e); }
}

function withReview(fig, image) {
  // An image the safety filter flagged: stored blurred, out of the gallery until approved (or rejected: deleted).
  if (image.review !== "held") return fig;
  const note = image.record?.extra?.safety ?? {};
  const why = note.check === "prompt" ? `terms ${(note.terms ?? []).join(", ")}`
    : `score ${note.score} ≥ threshold ${note.threshold}`;
  const p = document.createElement("p");
  p.className = "safety-note";
  p.textContent = `Held for review: flagged by the ${note.check} check (${why}); shown blurred.`;
  const decide = (decision) => async () => {
    try {
      await api(`/v1/gallery/images/${image.id}/review`, { method: "POST", body: { decision } });
      loadGallery();
    } catch (e) { showError(e); }
  };
  const approve = button("Approve", decide("approve")), reject = button("Reject", decide("reject"));
  approve.className = "approve";
  reject.className = "reject";
  fig.classList.add("held");
  fig.append(p, approve, reject);
  return fig;
}

function describeRecord(record) {
  const list = document.createElement("dl");
  const shown = ["prompt", "negative_prompt", "seed", "steps", "guidance", "sampler", "width", "height", "model",
                 "model_hash", "strength", "created"];
  for (const name of shown) {
    if (record[name] === undefined || record[name] === null || record[name] === "") continue;
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = name.replace("_", " ");
    dd.textContent = String(record[name]);
    list.append(dt, dd);
  }
  return list;
}

const CREDENTIALS = { trusted: "signed by your kaiga identity (trusted)", untrusted: "signed, but not by a root this "
  + "server trusts", tampered: "signed, but changed since (tampered)", invalid: "credentials invalid", none: "unsigned" };

async function showProvenance(item, line) {
  // GET /v1/gallery/images/{id}/verify: what `kaiga verify` says of the stored file, in one line.
  line.textContent = "checking content credentials…";
  line.className = "provenance";
  try {
    const v = await api(`/v1/gallery/images/${item.id}/verify`);
    const mark = v.watermark.status === "found"
      ? `watermark ${v.watermark.payload} found (p = ${v.watermark.p_value.toExponential(1)})`
        + (v.watermark.matches_record === false ? ", but not this record's" : "")
      : "no watermark found";
    line.textContent = `Content credentials: ${CREDENTIALS[v.credentials.status] ?? v.credentials.status} · ${mark}`;
    line.classList.add(v.ok ? "verified" : "unverified");
  } catch (e) { line.textContent = `Content credentials: not checked (${e.message})`; }
}

async function openDetails(image) {
  // Items from a finished job carry id, url and record; fetch the gallery's full item for favourite and rating.
  let item = image;
  try { item = await api(`/v1/gallery/images/${image.id}`); } catch (e) { showError(e); return; }
  const dialog = $("#details");
  $("img", dialog).src = item.url;
  $("img", dialog).alt = item.prompt;
  $(".record", dialog).replaceChildren(describeRecord(item.record));
  showProvenance(item, $(".provenance", dialog));
  const stars = $(".rating", dialog);
  stars.replaceChildren(...[1, 2, 3, 4, 5].map((n) => {
    const b = document.createElement("button");
    b.textContent = item.rating && n <= item.rating ? "★" : "☆";
    b.title = `rate ${n}`;
    b.onclick = async () => { await update(item, { rating: item.rating === n ? null : n }); };
    return b;
  }));
  const fav = $(".favourite", dialog);
  fav.textContent = item.favourite ? "★ favourite" : "☆ favourite";
  fav.onclick = () => update(item, { favourite: !item.favourite });
  $(".rerun", dialog).onclick = async () => {
    dialog.close();
    selectTab("generate");
    const panel = $("#generate");
    try {
      const job = await api(`/v1/gallery/images/${item.id}/rerun`, { method: "POST" });
      const done = await followJob(job, panel);
      $(".results", panel).replaceChildren(...done.images.map((im) => figure(im, openDetails)));
      setProgress(panel, null, `re-ran seed ${item.record.seed}`);
      showUnknownWords(panel, done);
    } catch (e) { showError(e); }
  };
  $(".download", dialog).href = item.url;
  $(".download", dialog).download = fileName(item);
  $(".to-edit", dialog).onclick = () => { dialog.close(); sendToEdit(item); };
  $(".use-settings", dialog).onclick = () => { dialog.close(); useSettings(item.record); };
  $(".delete", dialog).onclick = async () => {
    if (!confirm("Delete this image from the gallery?")) return;
    try { await api(`/v1/gallery/images/${item.id}`, { method: "DELETE" }); dialog.close(); loadGallery(); }
    catch (e) { showError(e); }
  };
  $(".close", dialog).onclick = () => dialog.close();
  if (!dialog.open) dialog.showModal();
}

async function update(item, change) {
  try {
    const updated = await api(`/v1/gallery/images/${item.id}`, { method: "PATCH", body: change });
    openDetails(updated);
  } catch (e) { showError(e); }
}

async function sendToEdit(image) {
  // The image becomes the Edit tab's init image, with its prompt and negative prompt.
  selectTab("edit");
  try {
    const response = await fetch(image.url);
    if (!response.ok) throw new Error(`${image.url}: ${response.status} ${response.statusText}`);
    loadEditImage(await response.blob());
  } catch (e) { showError(e); return; }
  const form = $("#edit-form"), record = image.record ?? {};
  form.elements.prompt.value = record.prompt ?? image.prompt ?? "";
  form.elements.negative_prompt.value = record.negative_prompt ?? "";
}

// The record's fields that the generate form has an input for, under the same names (size apart).
const SETTINGS = ["prompt", "negative_prompt", "seed", "steps", "guidance", "sampler"];

function useSettings(record) {
  // Fill the generate form with what made the image: the model first, as the other choices follow it.
  selectTab("generate");
  const form = $("#generate-form"), el = form.elements;
  if (modelsInfo.has(record.model)) el.model.value = record.model;
  fitToModel(form);
  el.style.value = record.extra?.style?.mix ?? "";  // the mix, with the shares it was made with
  el.stylize.value = record.extra?.stylize ?? "";
  el.chaos.value = record.extra?.chaos ?? "";
  const size = `${record.width}x${record.height}`;
  if (![...el.size.options].some((o) => o.value === size)) el.size.append(new Option(sizeLabel(record.width, record.height), size));
  el.size.value = size;
  const values = { ...record.extra, ...record };
  for (const name of [...SETTINGS, ...familyOptions(form)]) {
    const input = el[name], value = values[name];
    if (!input || input.disabled) continue;
    // A family without denoising records steps 0, guidance null and sampler "": those stay the model's default.
    input.value = value === undefined || value === null || (name === "steps" && value === 0) ? "" : value;
  }
}

// ---- models: the form offers only what the chosen model can do -------------------------------------
const modelsInfo = new Map();  // model id -> its `kaiga` description from GET /v1/models
let schemaFields = {};  // GET /v1/schema/request's fields
const familyOptions = (form) => $$("label[data-if=option] input", form).map((input) => input.name);

function modelInfo(form) {
  return modelsInfo.get(form.elements.model?.value);
}

function sizeLabel(width, height, native) {
  return `${width}×${height}${width === native && height === native ? " (native)" : ""}`;
}

function sizeChoices(info) {
  // Square sizes from the native one, doubling up to the largest the model makes (itself offered too).
  const sizes = [];
  for (let s = info.native_size; s <= info.max_size; s *= 2) sizes.push(s);
  if (info.max_size % info.size_multiple === 0 && !sizes.includes(info.max_size)) sizes.push(info.max_size);
  return sizes;
}

function replaceOptions(select, values, labels, keep) {
  // New choices for a select, keeping the chosen one where it is still offered, else `keep`, else the first.
  const chosen = select.value;
  select.replaceChildren(...values.map((v, i) => new Option(labels[i], v)));
  select.value = values.includes(chosen) ? chosen : values.includes(keep) ? keep : values[0] ?? "";
}

function fitToModel(form) {
  // Sizes, samplers and the inputs the model reads follow the chosen model; an input it ignores is hidden
  // and disabled, so it is never sent. An empty steps or guidance is the model's default, said in the placeholder.
  const info = modelInfo(form);
  if (!info) return;
  const el = form.elements;
  if (el.size) {
    const sizes = sizeChoices(info);
    replaceOptions(el.size, sizes.map((s) => `${s}x${s}`), sizes.map((s) => sizeLabel(s, s, info.native_size)),
                   `${info.native_size}x${info.native_size}`);
  }
  const samplers = (schemaFields.sampler?.choices ?? info.samplers).filter((s) => info.samplers.includes(s));
  replaceOptions(el.sampler, samplers, samplers, schemaFields.sampler?.default);
  for (const name of ["steps", "guidance", ...familyOptions(form)]) {
    if (!el[name]) continue;
    const given = info.defaults?.[name];
    el[name].placeholder = given === undefined ? "model default" : `model default: ${given}`;
  }
  for (const label of $$("label[data-if]", form)) {
    const input = $("input, select, textarea", label);
    const shown = { samplers: info.samplers.length > 0, option: info.options.includes(input.name),
                    schema: input.name in schemaFields }[label.dataset.if];
    label.hidden = !shown;
    input.disabled = !shown;
  }
}

// ---- set-up --------------------------------------------------------------------------------------
function selectTab(name) {
  for (const tab of $$("nav [role=tab]")) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  for (const panel of $$("main > section")) panel.hidden = panel.id !== name;
  if (name === "gallery") loadGallery();
  if (name === "generate") fillTaste().catch(showError);  // reviews given since count
  if (name === "campaigns") loadCampaigns().catch(showError);
}

// ---- review: a campaign's images, worked through with the keyboard (POST /v1/campaigns/{name}/reviews) -----
const reviewState = { name: null, images: [], at: 0 };

async function openReview(name) {
  reviewState.name = name;
  const listed = await api(`/v1/campaigns/${encodeURIComponent(name)}/images`);
  reviewState.images = listed.data;
  reviewState.me = listed.reviewer;
  reviewState.at = 0;
  $("#review").hidden = false;
  $("#review .review-title").textContent = `${name}: ${reviewState.images.length} images`;
  drawReview();
  $("#review .review-grid").focus();
  const sheets = (await api(`/v1/campaigns/${encodeURIComponent(name)}/sheets`)).data;
  $("#review .sheet-buttons").replaceChildren(...sheets.map((sheet) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = sheet.name.replaceAll("-x-", " × ");
    button.onclick = () => showSheet(sheet);
    return button;
  }));
  $("#review .sheet-view").hidden = true;
}

async function showSheet(sheet) {
  // GET /v1/campaigns/{name}/sheets/{sheet}.png, drawn by the server from the cells made so far (with the key).
  try {
    const response = await fetch(sheet.url, { headers: authHeaders() });
    if (!response.ok) throw new Error(`${sheet.name}: ${response.status} ${response.statusText}`);
    const view = $("#review .sheet-view");
    if (view.src.startsWith("blob:")) URL.revokeObjectURL(view.src);
    view.src = URL.createObjectURL(await response.blob());
    view.alt = `contact sheet ${sheet.name}`;
    view.dataset.sheet = sheet.name;
    view.hidden = false;
  } catch (e) { showError(e); }
}

function mine(image) {
  // The caller's own review of the image (the server says under which name the caller reviews).
  return image.reviews.find((r) => r.reviewer === reviewState.me) ?? null;
}

function drawReview() {
  $("#review .review-grid").replaceChildren(...reviewState.images.map((image, i) => {
    const fig = document.createElement("figure");
    fig.dataset.imageId = image.id;
    fig.classList.toggle("current", i === reviewState.at);
    const own = mine(image);
    if (own?.decision) fig.dataset.decision = own.decision;
    const img = document.createElement("img");
    img.src = image.url;
    img.alt = image.prompt;
    img.onclick = () => { reviewState.at = i; drawReview(); };
    const cap = document.createElement("figcaption");
    const values = Object.entries(image.values).map(([k, v]) => `${k}=${v}`).join(" · ");
    const rated = own?.rating ? ` · ${own.rating}/5` : "";
    cap.textContent = `${own?.star ? "★ " : ""}${own?.decision ?? "unreviewed"}${rated} · ${values}`;
    fig.append(img, cap);
    return fig;
  }));
}

async function reviewKey(event) {
  const image = reviewState.images[reviewState.at];
  if (!image) return;
  const key = event.key.toLowerCase();
  const moves = { arrowright: 1, arrowleft: -1 };
  if (key in moves) {
    reviewState.at = Math.max(0, Math.min(reviewState.images.length - 1, reviewState.at + moves[key]));
    drawReview();
    event.preventDefault();
    return;
  }
  const own = mine(image);
  const body = { a: { decision: "approved" }, r: { decision: "rejected" }, s: { star: !(own?.star) } }[key]
    ?? ("12345".includes(key) && key.length === 1 ? { rating: Number(key) } : null)  // what --personalize learns from
    ?? (key === "n" ? { note: prompt("Note on this image", own?.note ?? "") ?? own?.note ?? "" } : null);
  if (!body) return;
  event.preventDefault();
  try {
    const review = await api(`/v1/campaigns/${encodeURIComponent(reviewState.name)}/reviews`,
                             { method: "POST", body: { image_id: image.id, ...body } });
    reviewState.me = review.reviewer;
    image.reviews = [...image.reviews.filter((r) => r.reviewer !== review.reviewer), review];
    if (body.decision) reviewState.at = Math.min(reviewState.images.length - 1, reviewState.at + 1);  // on to the next
    drawReview();
  } catch (e) { showError(e); }
}

async function moreLikeThis() {
  // POST /v1/campaigns/{name}/more: variations of the approved images, made by the server's workers.
  try {
    const more = await api(`/v1/campaigns/${encodeURIComponent(reviewState.name)}/more`, { method: "POST", body: {} });
    $("#campaigns .status-text").textContent =
      `more like this: ${more.jobs.length} job(s) queued from ${more.images.length} approved image(s); see the Gallery`;
  } catch (e) { showError(e); }
}

// ---- campaigns: POST /v1/campaigns with a YAML plan; the server's workers make the cells -----------
let campaignTimer = null;

async function runCampaign(event) {
  event.preventDefault();
  showError(null);
  const form = event.target, status = $("#campaigns .status-text");
  try {
    const started = await api("/v1/campaigns", { method: "POST", body: { yaml: form.elements.yaml.value } });
    status.textContent = `${started.name}: ${started.cells} cells, ${started.queued_now} queued now`;
    await loadCampaigns();
  } catch (e) { showError(e); }
}

async function loadCampaigns() {
  // The campaigns with their counts, refreshed every second while any has cells to make.
  clearTimeout(campaignTimer);
  const list = (await api("/v1/campaigns")).data;
  $("#campaigns .campaign-list tbody").replaceChildren(...list.map((c) => {
    const row = document.createElement("tr");
    row.dataset.campaign = c.name;
    const toMake = c.pending + c.running;
    for (const text of [c.name, c.cells, c.done, c.failed, toMake]) {
      const cell = document.createElement("td");
      cell.textContent = String(text);
      row.append(cell);
    }
    const bar = document.createElement("progress");
    bar.max = c.cells;
    bar.value = c.done + c.failed;
    const last = document.createElement("td");
    last.append(bar);
    row.append(last);
    if (c.failures.length) row.title = c.failures.map((f) => `${JSON.stringify(f.cell)}: ${f.error}`).join("\n");
    const open = document.createElement("button");
    open.textContent = "Review";
    open.className = "open-review";
    open.onclick = () => openReview(c.name).catch(showError);
    row.lastChild.append(" ", open);
    return row;
  }));
  const busy = list.some((c) => c.pending + c.running > 0);
  if (busy && !$("#campaigns").hidden) campaignTimer = setTimeout(() => loadCampaigns().catch(showError), POLL_MS);
}

// Where a form deliberately starts from another value than the request's default, in one place: the
// generate tab makes four images to choose from (the request's default is one).
const FORM_DEFAULTS = { "generate-form": { n: 4 } };

function applySchema(schema) {
  // Every request input takes its range, length, default and choices from the request's own fields
  // (GET /v1/schema/request); a value the user already typed is kept.
  for (const form of $$("form.settings")) {
    for (const [name, field] of Object.entries(schema.fields)) {
      const input = form.elements[name];
      if (!input || input.type === "file") continue;
      input.title = field.description;
      if (input.tagName === "SELECT") {
        // The model list and each model's samplers come from GET /v1/models (`fitToModel`).
        if (!field.choices || input.classList.contains("samplers")) continue;
        const chosen = input.value || field.default;
        input.replaceChildren(...field.choices.map((c) => new Option(c, c)));
        input.value = field.choices.includes(chosen) ? chosen : field.choices[0];
        continue;
      }
      if (input.type === "number") {
        if (field.minimum !== null) input.min = field.minimum;
        if (field.maximum !== null) input.max = field.maximum;
      }
      if (field.max_length !== null) input.maxLength = field.max_length;
      const start = FORM_DEFAULTS[form.id]?.[name] ?? field.default ?? field.when_omitted;
      if (input.value === "" && start !== null && start !== "") input.value = start;
    }
  }
}

// ---- styles --------------------------------------------------------------------------------------
async function fillStyles() {
  // The picker offers GET /v1/styles grouped as the library groups them; Add appends `name:share` to the mix.
  const styles = (await api("/v1/styles")).data;
  const groups = new Map();
  for (const s of styles) {
    const group = s.group || "yours";
    if (!groups.has(group)) groups.set(group, document.createElement("optgroup"));
    groups.get(group).label = group;
    const option = new Option(s.name, s.name);
    option.title = `${s.prompt}${s.negative ? ` — not: ${s.negative}` : ""}`;
    groups.get(group).append(option);
  }
  $(".style-pick").replaceChildren(...groups.values());
}

function addStyle() {
  const input = $("#generate-form").elements.style, name = $(".style-pick").value;
  const share = Number($(".style-share").value);
  const parts = input.value.split(",").map((p) => p.trim()).filter((p) => p && p.split(":")[0] !== name);
  parts.push(share === 1 ? name : `${name}:${share}`);
  input.value = parts.join(",");
}

async function fillLoras() {
  // The LoRA picker offers GET /sdapi/v1/loras ($KAIGA_HOME/loras); Add appends `name:weight` to the field.
  const loras = await api("/sdapi/v1/loras");
  const options = loras.map((l) => {
    const option = new Option(l.name, l.name);
    const base = l.metadata?.base?.model;
    option.title = base ? `trained on ${base}, rank ${l.metadata.rank}` : l.path;
    return option;
  });
  $(".lora-pick").replaceChildren(...(options.length ? options : [new Option("(none in $KAIGA_HOME/loras)", "")]));
  $(".add-lora").disabled = !options.length;
}

function addLora() {
  const input = $("#generate-form").elements.lora, name = $(".lora-pick").value;
  if (!name) return;
  const weight = Number($(".lora-weight").value);
  const parts = input.value.split(",").map((p) => p.trim()).filter((p) => p && p.split(":")[0] !== name);
  parts.push(weight === 1 ? name : `${name}:${weight}`);
  input.value = parts.join(",");
  input.dispatchEvent(new Event("input", { bubbles: true }));  // a live preview redraws with it
}

async function fillEmbeddings() {
  // The learned-word picker offers GET /sdapi/v1/embeddings ($KAIGA_HOME/embeddings), as A1111's Textual Inversion
  // tab does; a word in the prompt (or the negative prompt) is all it takes to use one, so Add writes the word there.
  const { loaded } = await api("/sdapi/v1/embeddings");
  const options = Object.entries(loaded).map(([word, e]) => {
    const option = new Option(word, word);
    option.title = e.sd_checkpoint_name ? `trained on ${e.sd_checkpoint_name}, ${e.shape}-d` : `${e.shape}-d`;
    return option;
  });
  $(".embedding-pick").replaceChildren(
    ...(options.length ? options : [new Option("(none in $KAIGA_HOME/embeddings)", "")]));
  for (const b of $$(".add-embedding, .add-embedding-negative")) b.disabled = !options.length;
}

function addEmbedding(field) {
  const input = $("#generate-form").elements[field], word = $(".embedding-pick").value;
  if (!word || input.value.split(/[^\w-]+/).includes(word)) return;  // there already: once is enough
  input.value = input.value.trim() ? `${input.value.trim().replace(/,$/, "")}, ${word}` : word;
  input.dispatchEvent(new Event("input", { bubbles: true }));  // a live preview redraws with it
}

// ---- taste: whose it is and whether it is enough to personalise by (GET /v1/taste) ------------------------------
const tasteState = { person: null };

async function fillTaste() {
  const taste = await api("/v1/taste");
  tasteState.person = taste.person;
  const box = $("#generate-form").elements.personalise;
  box.disabled = !taste.enough;
  if (!taste.enough) box.checked = false;
  $(".taste-count").textContent = taste.enough
    ? `(${taste.person}: ${taste.judgements} images judged)`
    : `(rate a few images in Review first: ${taste.judgements} judged)`;
}

async function fillChoices() {
  try {
    schemaFields = (await api("/v1/schema/request")).fields;
    applySchema({ fields: schemaFields });
  } catch (e) { showError(e); }
  fillStyles().catch(showError);
  fillLoras().catch(showError);
  fillEmbeddings().catch(showError);
  fillTaste().catch(showError);
  try {
    const models = (await api("/v1/models")).data;
    for (const m of models) modelsInfo.set(m.id, m.kaiga);
    for (const form of $$("form.settings")) {
      const select = form.elements.model;
      // The Edit tab offers only the models that edit images.
      const offered = models.filter((m) => form.id !== "edit-form" || m.kaiga.edits);
      const chosen = select.value || models.find((m) => m.kaiga.default)?.id;
      replaceOptions(select, offered.map((m) => m.id), offered.map((m) => `${m.id} (${m.kaiga.family})`), chosen);
      fitToModel(form);
    }
  } catch (e) { showError(e); }
}

document.addEventListener("DOMContentLoaded", () => {
  const key = $("#api-key");
  key.value = localStorage.getItem("kaiga-api-key") ?? "";
  key.addEventListener("change", () => { localStorage.setItem("kaiga-api-key", key.value); fillChoices(); });
  for (const tab of $$("nav [role=tab]")) tab.addEventListener("click", () => selectTab(tab.dataset.tab));
  $("#generate-form").addEventListener("submit", generate);
  $("#generate-form").elements.live.addEventListener("change", (e) => toggleLive(e.target.checked));
  $("#generate-form").addEventListener("input", (e) => { if (e.target.name !== "live") sendLive(); });
  $("#blend-go").addEventListener("click", runBlend);
  $("#blend-clear").addEventListener("click", clearBlend);
  $(".add-style").addEventListener("click", addStyle);
  $(".add-lora").addEventListener("click", addLora);
  $(".add-embedding").addEventListener("click", () => addEmbedding("prompt"));
  $(".add-embedding-negative").addEventListener("click", () => addEmbedding("negative_prompt"));
  for (const form of $$("form.settings")) form.elements.model.addEventListener("change", () => fitToModel(form));
  $("#generate .cancel").addEventListener("click", () => {
    if (currentJob) api(`/v1/jobs/${currentJob}/cancel`, { method: "POST" }).catch(showError);
  });
  $("#edit-form").addEventListener("submit", runEdit);
  $("#edit-form").elements.image.addEventListener("change", (e) => e.target.files[0] && loadEditImage(e.target.files[0]));
  $("#clear-mask").addEventListener("click", clearMask);
  setUpBrush();
  $("#gallery-form").addEventListener("submit", (e) => { e.preventDefault(); loadGallery(); });
  $("#more").addEventListener("click", () => loadGallery(true));
  $("#campaign-form").addEventListener("submit", runCampaign);
  $("#review .review-grid").addEventListener("keydown", reviewKey);
  $("#review .more-like-this").addEventListener("click", moreLikeThis);
  fillChoices();
});
