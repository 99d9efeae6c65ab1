// lightsr serve: choose images and options, send each image as the body of POST /api/jobs,
// poll its job, then show a before/after slider and a download link. No framework, no build.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
let options = null;
let chosen = [];

function say(text) { $("#message").textContent = text || ""; }

function fillModels() {
  const scale = $("#scale").value;
  const model = $("#model");
  model.innerHTML = "";
  for (const [name, info] of Object.entries(options.models)) {
    if (info.scale !== null && String(info.scale) !== scale) continue;
    const opt = new Option(info.scale === null ? `${name} (${info.description})` : name, name);
    opt.title = info.description;
    model.add(opt);
  }
  if ([...model.options].some((o) => o.value === options.default_model)) {
    model.value = options.default_model;
  }
}

async function init() {
  options = await (await fetch("/api/options")).json();
  const scales = [...new Set(Object.values(options.models).map((m) => m.scale).filter((s) => s))];
  for (const s of scales.sort()) $("#scale").add(new Option(`x${s}`, String(s)));
  $("#scale").value = String(options.models[options.default_model].scale || scales[0]);
  fillModels();
  $("#scale").addEventListener("change", fillModels);
  for (const p of options.precisions) $("#precision").add(new Option(p, p));
  $("#colorfix-label").hidden = !options.color_fix;
  const mib = (options.max_bytes / 2 ** 20).toFixed(1);
  const mp = (options.max_pixels / 1e6).toFixed(1);
  $("#limits").textContent = `PNG, JPEG, WebP, BMP or TIFF; at most ${mib} MiB and ${mp} MP each`;
}

function choose(files) {
  chosen = [...files];
  say("");
  $("#run").disabled = chosen.length === 0;
  $("#drop strong").textContent = chosen.length
    ? chosen.map((f) => f.name).join(", ") : "Drop images here";
}

function statusText(job) {
  if (job.state === "queued") {
    return job.ahead ? `queued, ${job.ahead} ahead` : "queued, starting";
  }
  if (job.state === "running") return "running";
  if (job.state === "done") {
    const [w, h] = job.output_size;
    return `done: ${w}x${h} in ${job.seconds.toFixed(2)} s`;
  }
  return `failed: ${job.error}`;
}

function makeCard(file) {
  const card = $("#job-template").content.firstElementChild.cloneNode(true);
  $(".name", card).textContent = file.name;
  $(".status", card).textContent = "uploading";
  const before = $(".before", card);
  before.src = URL.createObjectURL(file);
  const slider = $(".slider", card);
  slider.addEventListener("input", () => {
    const v = Number(slider.value);
    before.style.clipPath = `inset(0 ${100 - v}% 0 0)`;
    $(".divider", card).style.left = `${v}%`;
  });
  $("#jobs").prepend(card);
  return card;
}

async function follow(card, job) {
  const bar = $("progress", card);
  let runningSince = null;
  for (;;) {
    card.className = `job ${job.state}`;
    card.dataset.state = job.state;
    $(".status", card).textContent = statusText(job);
    if (job.state === "running") {
      runningSince = runningSince || performance.now();
      if (job.estimate) {  // estimated from the speed of earlier jobs; never shows 100%
        const t = (performance.now() - runningSince) / 1000;
        bar.value = Math.min(0.95, t / job.estimate);
      } else {
        bar.removeAttribute("value");  // indeterminate
      }
    }
    if (job.state === "done" || job.state === "failed") break;
    await new Promise((r) => setTimeout(r, 300));
    const res = await fetch(`/api/jobs/${job.id}`);
    if (!res.ok) { job = { state: "failed", error: (await res.json()).error }; continue; }
    job = await res.json();
  }
  if (job.state !== "done") return;
  const url = `/api/jobs/${job.id}/result`;
  const after = $(".after", card);
  after.src = url;
  await after.decode().catch(() => {});
  $(".compare", card).hidden = false;
  const link = $(".download", card);
  link.href = `${url}?download=1`;
  link.download = `${job.name.replace(/\.[^.]*$/, "")}_x${job.scale}.png`;
}

function refuse(card, file, error) {
  card.className = "job failed";
  card.dataset.state = "failed";
  $(".status", card).textContent = `refused: ${error}`;
  say(`${file.name}: ${error}`);
}

async function submit(file) {
  const card = makeCard(file);
  if (file.size > options.max_bytes) {  // the server would refuse it too (413)
    const mib = (n) => (n / 2 ** 20).toFixed(1);
    refuse(card, file, `the file is ${mib(file.size)} MiB; this server takes at most ` +
      `${mib(options.max_bytes)} MiB per image (start it with --max-upload-mb to change that)`);
    return;
  }
  const q = new URLSearchParams({
    model: $("#model").value,
    tile: $("#tile").value,
    precision: $("#precision").value,
    color_fix: $("#colorfix").checked ? "1" : "0",
    name: file.name,
  });
  let res;
  try {
    res = await fetch(`/api/jobs?${q}`, { method: "POST", body: file });
  } catch (e) {
    res = null;
  }
  if (!res || !res.ok) {
    const error = res ? (await res.json().catch(() => ({}))).error : "the server did not answer";
    refuse(card, file, error || `HTTP ${res.status}`);
    return;
  }
  await follow(card, await res.json());
}

function wire() {
  const drop = $("#drop");
  $("#files").addEventListener("change", (e) => choose(e.target.files));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    choose(e.dataTransfer.files);
  });
  $("#run").addEventListener("click", () => {
    say("");
    const files = chosen;
    Promise.all(files.map(submit));  // the server queues them; each card follows its job
  });
}

wire();
init().catch((e) => say(`cannot reach the server: ${e}`));
