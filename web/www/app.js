// The page: loads the wasm build of gradsift, runs LESS on the embedded demo when asked, draws
// the results. URL flags (used by the test): auto=1 runs at once with the defaults; pool=N sets
// how many pool examples (the first N) a run scores; report=1 POSTs the run's JSON to /result;
// hold=1 keeps the page loading until that POST is answered, so a headless screenshot shows
// the finished page.
import init, { Demo } from "./pkg/gradsift_web.js";

const flags = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const TASK_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79"];

// wgpu asks the browser for a device with the WebGPU features it knows, and subgroups are not
// among them (wgpu 30); Burn's matrix-product kernels use subgroup operations whenever they
// can, and a shader that enables subgroups is rejected on a device created without them. So
// every device this page requests gets the adapter's "subgroups" feature when it has one.
if ("gpu" in navigator && globalThis.GPUAdapter) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = function (descriptor = {}) {
    const features = new Set(descriptor.requiredFeatures || []);
    if (this.features.has("subgroups")) features.add("subgroups");
    return requestDevice.call(this, { ...descriptor, requiredFeatures: [...features] });
  };
  // Burn's kernels are written for Vulkan and Metal, whose compilers let a subgroup operation
  // sit in control flow they cannot prove uniform; the browser's WGSL compiler rejects such a
  // shader unless the module turns that check into a warning. (The page's selection is checked
  // against the CLI's in a test, so a kernel this lets through that computed wrongly would show.)
  const createShaderModule = GPUDevice.prototype.createShaderModule;
  GPUDevice.prototype.createShaderModule = function (descriptor) {
    if (typeof descriptor.code === "string" && /^\s*enable subgroups;/m.test(descriptor.code)) {
      descriptor = { ...descriptor, code: "diagnostic(warning, subgroup_uniformity);\n" + descriptor.code };
    }
    return createShaderModule.call(this, descriptor);
  };
}

if (flags.get("hold") === "1") {
  const img = new Image();
  img.src = "/hold";
  img.hidden = true;
  document.body.append(img);
}

function status(text) { $("status").textContent = text; console.log("gradsift: " + text); }

async function main() {
  await init();
  const gpu = "gpu" in navigator && flags.get("cpu") !== "1";
  if (!gpu) {
    $("notice").hidden = false;
    $("notice").textContent = flags.get("cpu") === "1"
      ? "CPU requested: running on Burn's CPU backend compiled to wasm (one thread)."
      : "This browser has no WebGPU: running on Burn's CPU backend compiled to wasm (one thread, slower). Chrome, Edge and Safari 26 have WebGPU.";
  }
  status("Loading the embedded model and data…");
  const demo = await Demo.open(gpu);
  $("device").textContent = "Running on " + demo.device();
  const notice = demo.notice();
  if (notice) { $("notice").hidden = false; $("notice").textContent = notice; }
  $("pool-size").textContent = demo.pool_size();
  const tasks = JSON.parse(demo.target_tasks());
  for (const t of tasks) {
    const label = document.createElement("label");
    label.innerHTML = `<input type="checkbox" value="${t}" checked> ${t}`;
    $("tasks").append(label);
  }
  $("budget").max = demo.pool_size();
  $("pool").max = demo.pool_size();
  $("pool").value = Math.min(Number(flags.get("pool")) || demo.pool_size(), demo.pool_size());
  $("run").disabled = false;
  status("Ready.");
  $("run").onclick = () => run(demo);
  if (flags.get("auto") === "1") await run(demo);
}

async function run(demo) {
  const chosen = [...$("tasks").querySelectorAll("input:checked")].map((i) => i.value);
  if (chosen.length === 0) { status("Choose at least one target task."); return; }
  const budget = Number($("budget").value);
  // The run takes at most the whole pool; the progress bar counts what it takes.
  const pool = Math.min(Number($("pool").value), demo.pool_size());
  $("run").disabled = true;
  $("results").hidden = true;
  const total = { target: 0, pool: 0 };
  try {
    const json = await demo.run(chosen.join(","), budget, pool, (stage, done, n) => {
      total[stage] = n;
      const all = done + (stage === "pool" ? total.target : 0);
      const of = (total.target || 0) + pool;
      $("bar").style.width = `${(100 * all) / of}%`;
      status(`Gradients of the ${stage}: ${done} of ${n} examples`);
    }, () => performance.now());
    const report = JSON.parse(json);
    show(report);
    status(`Done in ${report.seconds.toFixed(1)} s on ${report.device} (scorer: ${report.scorer}).`);
    if (flags.get("report") === "1") {
      await fetch("/result", { method: "POST", body: json });
    }
  } catch (e) {
    status("Failed: " + e);
    if (flags.get("report") === "1") {
      await fetch("/result", { method: "POST", body: JSON.stringify({ error: String(e) }) });
    }
  } finally {
    $("run").disabled = false;
  }
}

function show(r) {
  $("results").hidden = false;
  const pct = (x) => `${(100 * x).toFixed(0)}%`;
  $("summary").innerHTML = `Target task${r.target_tasks.length > 1 ? "s" : ""} <b>${r.target_tasks.join(", ")}</b>: `
    + `<b>${pct(r.selected_share)}</b> of the ${r.budget} selected examples are of the target task, `
    + `against ${pct(r.pool_share)} for a random subset of the same size (the pool's share).`;
  const selected = new Set(r.selected);
  histogram($("histogram"), r.scores, selected);
  const kinds = [...new Set(r.tasks)].sort();
  pcaMap($("pca"), r.pca, r.tasks, kinds, selected);
  const body = $("selected").querySelector("tbody");
  body.innerHTML = "";
  r.selected.forEach((i, rank) => {
    const tr = document.createElement("tr");
    if (r.target_tasks.includes(r.tasks[i])) tr.className = "target";
    for (const [text, num] of [[rank + 1, true], [i, true], [r.tasks[i], false], [r.scores[i].toFixed(4), true], [r.prompts[i], false], [r.completions[i], false]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (num) td.className = "num";
      tr.append(td);
    }
    body.append(tr);
  });
}

function axes(ctx, w, h, pad) {
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#999";
  ctx.beginPath();
  ctx.moveTo(pad, pad / 2);
  ctx.lineTo(pad, h - pad);
  ctx.lineTo(w - pad / 2, h - pad);
  ctx.stroke();
}

function histogram(canvas, scores, selected) {
  const ctx = canvas.getContext("2d");
  const [w, h, pad, bins] = [canvas.width, canvas.height, 40, 40];
  axes(ctx, w, h, pad);
  const finite = scores.filter(Number.isFinite);
  const lo = Math.min(...finite), hi = Math.max(...finite);
  const width = (hi - lo) / bins || 1;
  const all = new Array(bins).fill(0), sel = new Array(bins).fill(0);
  scores.forEach((s, i) => {
    if (!Number.isFinite(s)) return;
    const b = Math.min(bins - 1, Math.floor((s - lo) / width));
    all[b]++;
    if (selected.has(i)) sel[b]++;
  });
  const top = Math.max(...all);
  const bw = (w - 1.5 * pad) / bins;
  all.forEach((n, b) => {
    const x = pad + b * bw;
    const bh = ((h - 1.5 * pad) * n) / top;
    ctx.fillStyle = "#9cc3e6";
    ctx.fillRect(x + 1, h - pad - bh, bw - 2, bh);
    const sh = ((h - 1.5 * pad) * sel[b]) / top;
    ctx.fillStyle = "#ff7f0e";
    ctx.fillRect(x + 1, h - pad - sh, bw - 2, sh);
  });
  ctx.fillStyle = "#333";
  ctx.font = "12px sans-serif";
  ctx.fillText(lo.toFixed(3), pad, h - pad + 15);
  ctx.fillText(hi.toFixed(3), w - pad - 30, h - pad + 15);
  ctx.fillText("score", w / 2 - 15, h - 8);
  ctx.fillText(String(top), 5, pad / 2 + 10);
}

function pcaMap(canvas, points, tasks, kinds, selected) {
  const ctx = canvas.getContext("2d");
  const [w, h, pad] = [canvas.width, canvas.height, 40];
  axes(ctx, w, h, pad);
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const legend = 110;
  const sx = (x) => pad + ((x - x0) / (x1 - x0 || 1)) * (w - 1.5 * pad - legend);
  const sy = (y) => h - pad - ((y - y0) / (y1 - y0 || 1)) * (h - 1.5 * pad);
  points.forEach((p, i) => {
    ctx.fillStyle = TASK_COLOURS[kinds.indexOf(tasks[i]) % TASK_COLOURS.length];
    ctx.beginPath();
    ctx.arc(sx(p[0]), sy(p[1]), 2.5, 0, 2 * Math.PI);
    ctx.fill();
  });
  ctx.strokeStyle = "#000";
  ctx.lineWidth = 1.5;
  points.forEach((p, i) => {
    if (!selected.has(i)) return;
    ctx.beginPath();
    ctx.arc(sx(p[0]), sy(p[1]), 6, 0, 2 * Math.PI);
    ctx.stroke();
  });
  ctx.font = "12px sans-serif";
  kinds.forEach((k, j) => {
    ctx.fillStyle = TASK_COLOURS[j % TASK_COLOURS.length];
    ctx.fillRect(w - legend, 12 + 16 * j, 10, 10);
    ctx.fillStyle = "#333";
    ctx.fillText(k, w - legend + 15, 21 + 16 * j);
  });
  ctx.fillText("PC 1", w / 2 - 15, h - 8);
}

main().catch((e) => { status("Could not start: " + e); console.error(e); });
