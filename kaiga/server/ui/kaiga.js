// kaiga's web UI. Plain JavaScript over the server's public API, nothing the API does not also offer:
//   generate: POST /v1/jobs, then GET /v1/jobs/{id} for progress and the images
//   edit:     POST /v1/images/edits (multipart; painted pixels become transparent in the mask, OpenAI's
//             convention), progress from GET /sdapi/v1/progress while it runs
//   gallery:  /v1/gallery/images (search, favourites, ratings, delete, re-run, export)
//   forms:    GET /v1/schema/request (each request input's range, default and choices), GET /v1/models
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

function figure(image, onClick) {
  const fig = document.createElement("figure");
  const img = document.createElement("img");
  img.src = image.url;
  img.alt = image.record?.prompt ?? image.prompt ?? "";
  const caption = document.createElement("figcaption");
  const seed = image.record?.seed;
  caption.textContent = seed === undefined ? img.alt : `seed ${seed} · ${img.alt}`;
  fig.append(img, caption);
  fig.addEventListener("click", () => onClick(image));
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
  const { style, size, ...request } = formFields(form);
  if (style) request.prompt = `${request.prompt}, ${style}`;  // a style is words in the prompt
  if (size) [request.width, request.height] = size.split("x").map(Number);
  showError(null);
  $("button[type=submit]", form).disabled = true;
  $(".results", panel).replaceChildren();
  showUnknownWords(panel, null);
  setProgress(panel, 0, "submitting");
  try {
    const started = performance.now();
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

// ---- edit ----------------------------------------------------------------------------------------
const editState = { image: null, painted: false };

function loadEditImage(blob) {
  const url = URL.createObjectURL(blob);
  const img = new Image();
  img.onload = () => {
    const canvas = $("#edit-image");
    canvas.width = $("#edit-mask").width = img.naturalWidth;
    canvas.height = $("#edit-mask").height = img.naturalHeight;
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
    // The brush slider is in screen pixels of the 256-px box; scale it to the image's pixels.
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
  const { brush, ...fields } = formFields(form);
  const body = new FormData();
  body.append("image", editState.image, "image.png");
  if (editState.painted) body.append("mask", await maskBlob(), "mask.png");
  body.append("prompt", fields.prompt ?? "");
  body.append("response_format", "url");
  for (const name of ["strength", "steps", "seed", "n"]) if (fields[name] !== undefined) body.append(name, fields[name]);
  $("button[type=submit]", form).disabled = true;
  $(".results", panel).replaceChildren();
  showUnknownWords(panel, null);
  try {
    const request = apiResponse("/v1/images/edits", { method: "POST", form: body });
    followProgress(panel, request);
    const { data: answer, headers } = await request;
    setProgress(panel, null, `${answer.data.length} image(s)`);
    showUnknownWords(panel, await api(`/v1/jobs/${headers.get("x-kaiga-job-id")}`));
    $(".results", panel).append(...answer.data.map((d) => figure({ url: d.url, prompt: fields.prompt ?? "" }, (im) => {
      window.open(im.url, "_blank");
    })));
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
  $("#export").href = `/v1/gallery/export?${params.toString().replace(/(^|&)limit=\d+/, "")}`;
  if (append && galleryCursor) params.set("cursor", galleryCursor);
  try {
    const page = await api(`/v1/gallery/images?${params}`);
    const grid = $("#gallery .results");
    if (!append) grid.replaceChildren();
    grid.append(...page.data.map((im) => figure(im, openDetails)));
    galleryCursor = page.next_cursor;
    $("#more").hidden = !galleryCursor;
    if (!append && page.total === 0) grid.textContent = "No images yet.";
  } catch (e) { showError(e); }
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

async function openDetails(image) {
  // Items from a finished job carry id, url and record; fetch the gallery's full item for favourite and rating.
  let item = image;
  try { item = await api(`/v1/gallery/images/${image.id}`); } catch (e) { showError(e); return; }
  const dialog = $("#details");
  $("img", dialog).src = item.url;
  $("img", dialog).alt = item.prompt;
  $(".record", dialog).replaceChildren(describeRecord(item.record));
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
  $(".to-edit", dialog).onclick = async () => {
    dialog.close();
    selectTab("edit");
    loadEditImage(await (await fetch(item.url)).blob());
    $("#edit-form").elements.prompt.value = item.record.prompt ?? "";
  };
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

// ---- set-up --------------------------------------------------------------------------------------
function selectTab(name) {
  for (const tab of $$("nav [role=tab]")) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  for (const panel of $$("main > section")) panel.hidden = panel.id !== name;
  if (name === "gallery") loadGallery();
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
        if (!field.choices) continue;  // the model list comes from GET /v1/models
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

async function fillChoices() {
  try {
    applySchema(await api("/v1/schema/request"));
  } catch (e) { showError(e); }
  try {
    const models = await api("/v1/models");
    for (const select of $$("select.models")) {
      select.replaceChildren(...models.data.map((m) => new Option(m.id, m.id)));
    }
  } catch (e) { showError(e); }
}

document.addEventListener("DOMContentLoaded", () => {
  const key = $("#api-key");
  key.value = localStorage.getItem("kaiga-api-key") ?? "";
  key.addEventListener("change", () => { localStorage.setItem("kaiga-api-key", key.value); fillChoices(); });
  for (const tab of $$("nav [role=tab]")) tab.addEventListener("click", () => selectTab(tab.dataset.tab));
  $("#generate-form").addEventListener("submit", generate);
  $("#generate .cancel").addEventListener("click", () => {
    if (currentJob) api(`/v1/jobs/${currentJob}/cancel`, { method: "POST" }).catch(showError);
  });
  $("#edit-form").addEventListener("submit", runEdit);
  $("#edit-form").elements.image.addEventListener("change", (e) => e.target.files[0] && loadEditImage(e.target.files[0]));
  $("#clear-mask").addEventListener("click", clearMask);
  setUpBrush();
  $("#gallery-form").addEventListener("submit", (e) => { e.preventDefault(); loadGallery(); });
  $("#more").addEventListener("click", () => loadGallery(true));
  fillChoices();
});
