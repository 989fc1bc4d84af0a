// imdenoise page: pick an image and a method, POST it to api/v1/denoise, show before/after, download.
// No framework and no external resources; URLs are relative so the page works behind a path prefix.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, tiff: null, limits: null, sigmaUsed: null, method: null, urls: [], busy: false };

function track(url) { state.urls.push(url); return url; }
function releaseUrls() { state.urls.forEach((u) => URL.revokeObjectURL(u)); state.urls = []; }

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
}

function setProgress(text, percent) {
  $("progress-box").hidden = text === null;
  $("status").textContent = text || "";
  const bar = $("progress");
  if (percent === undefined || percent === null) bar.removeAttribute("value");
  else bar.value = percent;
}

function baseName(name) {
  const stem = (name || "image").replace(/\.[^.]*$/, "").replace(/[^\w.-]+/g, "_").slice(0, 80);
  return stem || "image";
}

async function errorText(xhrOrResponse, fallback) {
  try {
    const body = typeof xhrOrResponse.json === "function" ? await xhrOrResponse.json()
      : JSON.parse(xhrOrResponse.responseText || "{}");
    if (body && body.error) return body.error;
  } catch (e) { /* not JSON */ }
  return fallback;
}

async function loadMethods() {
  const select = $("method");
  try {
    const res = await fetch("api/v1/models");
    if (!res.ok) throw new Error(await errorText(res, `HTTP ${res.status}`));
    const body = await res.json();
    state.limits = body.limits;
    select.replaceChildren();
    for (const m of body.methods) {
      const opt = document.createElement("option");
      opt.value = m.name;
      opt.textContent = `${m.name} (${m.kind})`;
      opt.dataset.description = m.description;
      if (m.sigma_max) opt.dataset.sigmaMax = String(m.sigma_max);
      if (m.name === body.default) opt.selected = true;
      select.append(opt);
    }
    describeMethod();
  } catch (e) {
    showError(`Could not list the methods: ${e.message}`);
  }
  updateButton();
}

// The noise slider ends where the chosen model's training did (55 for the shipped models; 100 for
// methods without such a bound), so no level the model never saw can be picked.
function describeMethod() {
  const opt = $("method").selectedOptions[0];
  $("method-help").textContent = opt ? opt.dataset.description : "";
  const slider = $("sigma");
  const max = opt && opt.dataset.sigmaMax ? Math.round(Number(opt.dataset.sigmaMax)) : 100;
  slider.max = String(max);
  if (Number(slider.value) > max) slider.value = String(max);
  $("sigma-range").textContent = `0-${max}`;
  if (!$("auto-sigma").checked) $("sigma-value").textContent = slider.value;
}

function updateButton() {
  $("denoise").disabled = state.busy || !state.file || !$("method").value;
}

function chooseFile(file) {
  showError("");
  if (!file) return;
  if (state.limits && file.size > state.limits.max_bytes) {
    showError(`This file is ${(file.size / 1048576).toFixed(1)} MB; the server accepts at most `
      + `${(state.limits.max_bytes / 1048576).toFixed(1)} MB.`);
    return;
  }
  state.file = file;
  state.tiff = null;
  const drop = $("drop");
  drop.classList.add("has-file");
  $("drop-text").textContent = `${file.name} (${(file.size / 1024).toFixed(0)} KB) - drop another to replace it`;
  $("result").hidden = true;
  updateButton();
}

// XMLHttpRequest (not fetch) so the upload reports progress.
function post(url, form, onUpload) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.responseType = "blob";
    xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) onUpload(ev.loaded / ev.total); };
    xhr.upload.onload = () => onUpload(1);
    xhr.onload = () => resolve(xhr);
    xhr.onerror = () => reject(new Error("network error: is the server running?"));
    xhr.send(form);
  });
}

async function failure(xhr) {
  let message = `HTTP ${xhr.status}`;
  try {
    const body = JSON.parse(await xhr.response.text());
    if (body.error) message = body.error;
  } catch (e) { /* not JSON */ }
  if (xhr.status === 503 && xhr.getResponseHeader("Retry-After")) {
    message += ` (try again in ${xhr.getResponseHeader("Retry-After")} s)`;
  }
  return new Error(message);
}

async function request(format, sigma) {
  const form = new FormData();
  form.append("image", state.file, "upload");
  form.append("method", $("method").value);
  form.append("format", format);
  if (sigma !== null && sigma !== undefined) form.append("sigma", String(sigma));
  const started = performance.now();
  let timer = null;
  const xhr = await post("api/v1/denoise", form, (f) => {
    if (f < 1) { setProgress(`Uploading… ${Math.round(f * 100)}%`, f * 100); return; }
    if (timer) return;
    const tick = () => setProgress(`Denoising… ${((performance.now() - started) / 1000).toFixed(0)} s`, null);
    tick();
    timer = setInterval(tick, 500);
  }).finally(() => { if (timer) clearInterval(timer); });
  if (xhr.status !== 200) throw await failure(xhr);
  return xhr;
}

async function showBefore() {
  const img = $("before");
  const direct = track(URL.createObjectURL(state.file));
  const ok = await new Promise((resolve) => {
    img.onload = () => resolve(true);
    img.onerror = () => resolve(false);
    img.src = direct;
  });
  if (ok) return;
  // The browser cannot show this file (TIFF): ask the server for a PNG view of it.
  const form = new FormData();
  form.append("image", state.file, "upload");
  const xhr = await post("api/v1/preview", form, () => {});
  if (xhr.status === 200) img.src = track(URL.createObjectURL(xhr.response));
}

async function denoise() {
  if (!state.file || state.busy) return;
  state.busy = true;
  updateButton();
  showError("");
  $("result").hidden = true;
  releaseUrls();
  try {
    const sigma = $("auto-sigma").checked ? null : Number($("sigma").value);
    // One denoise, as TIFF (keeps 16-bit and float): the TIFF download is this very result, and the
    // PNG shown and offered is the server's lossless conversion of it (no second denoise).
    const xhr = await request("tiff", sigma);
    state.tiff = xhr.response;
    setProgress("Preparing the comparison…", null);
    const png = await toPng(state.tiff);
    await showBefore();
    const after = $("after");
    await new Promise((resolve) => { after.onload = resolve; after.onerror = resolve; after.src = track(URL.createObjectURL(png)); });
    const est = xhr.getResponseHeader("X-Imdenoise-Sigma-Estimated");
    const used = xhr.getResponseHeader("X-Imdenoise-Sigma");
    state.sigmaUsed = used === null ? sigma : Number(used);
    state.method = xhr.getResponseHeader("X-Imdenoise-Method") || $("method").value;
    $("sigma-estimated").textContent = est !== null ? `${Number(est).toFixed(1)} (0-255 scale)`
      : sigma === null ? "-" : "not estimated (level given)";
    const chosen = xhr.getResponseHeader("X-Imdenoise-Plan");  // 'default': the model and level it chose
    $("sigma-used").textContent = sigmaUsedText(used, est, sigma, chosen !== null);
    $("method-used").textContent = chosen === null ? state.method : `${state.method}: ${chosen}`;
    const ms = xhr.getResponseHeader("X-Imdenoise-Time-Ms");
    $("time-used").textContent = ms === null ? "-" : `${(Number(ms) / 1000).toFixed(2)} s`;
    const link = $("download-png");
    link.href = after.src;
    link.download = `${baseName(state.file.name)}-denoised.png`;
    setSplit(50);
    $("compare-slider").value = 50;
    $("result").hidden = false;
    layoutCompare();
    setProgress(null);
  } catch (e) {
    setProgress(null);
    showError(e.message);
  } finally {
    state.busy = false;
    updateButton();
  }
}

// The level the method really denoised with (X-Imdenoise-Sigma): a shipped model clamps an estimate
// to its trained range, so it can differ from the estimate; `default` sets a photo's level by its own
// rule (its plan, shown as the method, says so); some methods use no level at all.
function sigmaUsedText(used, est, sigma, planned) {
  if (used === null) return "not used by this method";
  const value = Number(used).toFixed(1);
  if (sigma !== null) return value;
  if (planned) return `${value} (auto)`;
  if (est !== null && Math.abs(Number(est) - Number(used)) >= 0.05) {
    return `${value} (auto; the estimate ${Number(est).toFixed(1)} is outside the method's range)`;
  }
  return `${value} (auto)`;
}

// The denoised TIFF as the PNG /denoise would have returned (8/16-bit kept, float -> 16-bit).
async function toPng(tiff) {
  const form = new FormData();
  form.append("image", tiff, "result.tif");
  form.append("keep_depth", "true");
  const xhr = await post("api/v1/preview", form, () => {});
  if (xhr.status !== 200) throw await failure(xhr);
  return xhr.response;
}

// Saves the result already computed: no request, no second denoise.
function downloadTiff() {
  if (!state.tiff) return;
  const a = document.createElement("a");
  a.href = track(URL.createObjectURL(state.tiff));
  a.download = `${baseName(state.file.name)}-denoised.tif`;
  document.body.append(a);
  a.click();
  a.remove();
}

// Fit: the image as wide as the panel at most, never enlarged (a 400 px image stays 400 px wide);
// 1:1: one image pixel per screen pixel, scrolling when larger than the panel.
function layoutCompare() {
  const img = $("before");
  const w = img.naturalWidth || $("after").naturalWidth;
  const h = img.naturalHeight || $("after").naturalHeight;
  if (!w) return;
  const actual = $("zoom").getAttribute("aria-pressed") === "true";
  const fit = Math.min(w, $("viewport").clientWidth || w);
  $("compare").style.width = `${actual ? w : fit}px`;
  $("compare").classList.toggle("actual", actual);
  const shown = actual ? 100 : Math.round((100 * fit) / w);
  $("view-size").textContent = `${w} x ${h} pixels, shown at ${shown}%`;
}

function setSplit(percent) {
  $("after-clip").style.clipPath = `inset(0 0 0 ${percent}%)`;
  $("divider").style.left = `${percent}%`;
}

function init() {
  const drop = $("drop");
  $("file").addEventListener("change", (ev) => chooseFile(ev.target.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, (ev) => { ev.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (ev) => chooseFile(ev.dataTransfer.files[0]));
  $("method").addEventListener("change", () => { describeMethod(); updateButton(); });
  const auto = $("auto-sigma");
  const slider = $("sigma");
  const syncSigma = () => {
    slider.disabled = auto.checked;
    $("sigma-value").textContent = auto.checked ? "auto" : slider.value;
  };
  auto.addEventListener("change", syncSigma);
  slider.addEventListener("input", syncSigma);
  syncSigma();
  $("denoise").addEventListener("click", denoise);
  $("download-tiff").addEventListener("click", downloadTiff);
  $("compare-slider").addEventListener("input", (ev) => setSplit(ev.target.value));
  $("zoom").addEventListener("click", () => {
    const zoom = $("zoom");
    zoom.setAttribute("aria-pressed", zoom.getAttribute("aria-pressed") === "true" ? "false" : "true");
    layoutCompare();
  });
  window.addEventListener("resize", layoutCompare);
  loadMethods();
}

document.addEventListener("DOMContentLoaded", init);
