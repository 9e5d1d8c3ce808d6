// The page: starts the engine (the wasm module built from web/src/lib.rs), wires the file
// inputs, and exposes the calls the browser test drives:
//   window.resnetReady                  Promise, resolved once the engine is up
//   window.resnetClassify(blob, k = 5)  Promise of [{class, label, prob}], most probable first
//   window.resnetLoadWeights(bytes)     Promise of the new model's one-line summary
import init, { open } from "./resnet_wgpu_web.js";

const $ = (id) => document.getElementById(id);

function showError(message) {
  $("error").textContent = message;
}

function errorText(e) {
  return e instanceof Error ? e.message : String(e);
}

// The adapter's name as the browser tells it (wgpu names a browser adapter by its
// description, which Chrome leaves empty unless asked for developer features).
async function adapterName(classifier) {
  const info = (await navigator.gpu.requestAdapter())?.info ?? {};
  const parts = [info.vendor, info.architecture, info.device, info.description];
  const name = [...new Set(parts.filter(Boolean))].join(" ") || classifier.adapter();
  return info.isFallbackAdapter ? `${name} (software)` : name;
}

async function start() {
  if (!navigator.gpu) {
    throw new Error(
      "This browser has no WebGPU (navigator.gpu is missing). Use a recent Chrome, Edge or " +
        "Firefox with WebGPU enabled, over https or on localhost.");
  }
  const started = performance.now();
  await init();
  const classifier = await open();
  const ms = performance.now() - started;
  const adapter = await adapterName(classifier);
  $("status").textContent =
    `Ready in ${ms.toFixed(0)} ms on ${adapter}. Model: ${classifier.model()}.`;
  return { classifier, adapter, loadMs: ms };
}

const ready = start();
window.resnetReady = ready.then(({ classifier, adapter, loadMs }) => ({
  adapter,
  model: classifier.model(),
  loadMs,
}));
ready.catch((e) => {
  $("status").textContent = "Not running.";
  showError(errorText(e));
});

// One GPU job at a time: the engine refuses an inference that overlaps another, so calls
// (a second image dropped before the first is done, a test's) wait their turn here.
let queue = Promise.resolve();
function inTurn(job) {
  const run = queue.then(job);
  queue = run.catch(() => {});
  return run;
}

window.resnetClassify = async (blob, k = 5) => {
  const { classifier } = await ready;
  const bytes = new Uint8Array(await blob.arrayBuffer());
  return inTurn(() => classifier.classify(bytes, k));
};

window.resnetLoadWeights = async (bytes, name = "weights.safetensors") => {
  const { classifier } = await ready;
  const summary = await inTurn(() => classifier.load_weights(new Uint8Array(bytes), name));
  $("status").textContent = `Model: ${summary}.`;
  return summary;
};

async function show(file) {
  showError("");
  const preview = $("preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  const started = performance.now();
  try {
    const top = await window.resnetClassify(file, 5);
    const ms = performance.now() - started;
    $("top").replaceChildren(...top.map(row));
    $("timing").textContent =
      `${file.name}: ${ms.toFixed(1)} ms (decode, preprocess, network, readback)`;
  } catch (e) {
    $("top").replaceChildren();
    showError(`${file.name}: ${errorText(e)}`);
  }
}

function row({ label, prob }) {
  const li = document.createElement("li");
  const name = document.createElement("span");
  name.textContent = label;
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.style.width = `${(100 * prob).toFixed(1)}%`;
  const value = document.createElement("span");
  value.className = "prob";
  value.textContent = `${(100 * prob).toFixed(2)}%`;
  li.append(name, bar, value);
  return li;
}

$("image").addEventListener("change", (e) => {
  if (e.target.files[0]) show(e.target.files[0]);
});

$("weights").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  showError("");
  $("status").textContent = `Loading ${file.name}…`;
  try {
    await window.resnetLoadWeights(await file.arrayBuffer(), file.name);
  } catch (err) {
    $("status").textContent = "The previous model is still loaded.";
    showError(`${file.name}: ${errorText(err)}`);
  }
});

const drop = $("drop");
drop.addEventListener("dragover", (e) => {
  e.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const file = e.dataTransfer.files[0];
  if (file) show(file);
});
