// Drives web/dist/ in headless Chromium and checks it against the native CLI (`resnet
// classify samples --json --top-k 5`, the debug build): the same top-1 class and
// probabilities within 1e-4 for every image in samples/ with the embedded default model, then
// with weights loaded through window.resnetLoadWeights (weights/default.safetensors, and a
// narrow ResNet-50 with 100 classes at 224×224 from tests/fixtures), and an unusable weights
// file refused with a message. Prints the 'N passed, N failed' line; exit status 1 on any
// failure, a missing WebGPU included.
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { basename, extname, join, resolve } from "node:path";
import puppeteer from "puppeteer-core";

const TOLERANCE = 1e-4;
const here = resolve(import.meta.dirname);
const root = join(here, "..");
const dist = join(here, "dist");
const samples = join(root, "samples");
// Weights the page loads after the default model, each checked against the CLI on that file.
const LOADED = ["weights/default.safetensors", "tests/fixtures/resnet50.safetensors"];

let passed = 0;
let failed = 0;
let largestDiff = 0;
function check(ok, what) {
  if (ok) passed++;
  else {
    failed++;
    console.log(`FAIL ${what}`);
  }
}

const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
function serve() {
  const server = createServer((req, res) => {
    const name = new URL(req.url, "http://x").pathname.replace(/^\/$/, "/index.html");
    const path = join(dist, name);
    if (!path.startsWith(dist + "/") || !statSync(path, { throwIfNoEntry: false })?.isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" });
    res.end(readFileSync(path));
  });
  return new Promise((ok) => server.listen(0, "127.0.0.1", () => ok(server)));
}

// The CLI's top-5 for every sample, by file name: with `weights`, or the embedded model.
function cliTop5(weights) {
  const args = ["run", "--quiet", "--", "classify", "samples", "--json", "--top-k", "5"];
  if (weights) args.push("--weights", weights);
  const out = execFileSync("cargo", args, { cwd: root, encoding: "utf8", stdio: "pipe" });
  return new Map(JSON.parse(out).map((p) => [basename(p.image), p.top]));
}

// Classifies every sample in the page; checks each against the CLI's `reference`.
async function classifyAll(page, pass, reference) {
  const times = [];
  for (const name of readdirSync(samples).sort()) {
    const want = reference.get(name);
    if (!want) continue;
    const bytes = readFileSync(join(samples, name)).toString("base64");
    const { top, ms } = await page.evaluate(async (b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const started = performance.now();
      const top = await window.resnetClassify(new Blob([bytes]), 5);
      return { top, ms: performance.now() - started };
    }, bytes);
    times.push(ms);
    compare(`${pass} ${name}`, top, want);
  }
  check(times.length === reference.size, `${pass}: ${times.length} of ${reference.size} images`);
  return times;
}

// Every sample classified by overlapping calls (as a person dropping images quickly): each
// must still get its own, correct answer.
async function classifyAtOnce(page, reference) {
  const names = readdirSync(samples).sort().filter((n) => reference.has(n));
  const images = names.map((n) => readFileSync(join(samples, n)).toString("base64"));
  const tops = await page.evaluate(async (all) => Promise.all(all.map((b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return window.resnetClassify(new Blob([bytes]), 5);
  })), images);
  names.forEach((name, i) => compare(`at once ${name}`, tops[i], reference.get(name)));
  console.log(`${names.length} overlapping classify calls answered like the CLI`);
}

function compare(what, got, want) {
  check(got.length === want.length, `${what}: ${got.length} classes, expected ${want.length}`);
  check(got[0]?.class === want[0].class,
    `${what}: top-1 ${got[0]?.class}, the CLI says ${want[0].class}`);
  want.forEach((w, rank) => {
    const g = got[rank];
    const diff = Math.abs((g?.prob ?? NaN) - w.prob);
    largestDiff = Math.max(largestDiff, diff);
    check(diff <= TOLERANCE, `${what}: rank ${rank + 1} prob ${g?.prob} vs ${w.prob}`);
    const same = got.find((x) => x.class === w.class);
    if (same) {
      check(Math.abs(same.prob - w.prob) <= TOLERANCE && same.label === w.label,
        `${what}: class ${w.class} ${same.label} ${same.prob} vs ${w.label} ${w.prob}`);
    }
  });
}

function summary(times) {
  const sorted = [...times].sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  return `mean ${mean.toFixed(1)} ms, median ${sorted[sorted.length >> 1].toFixed(1)} ms, ` +
    `first ${times[0].toFixed(1)} ms over ${times.length} images`;
}

async function loadWeights(page, file) {
  const bytes = readFileSync(join(root, file)).toString("base64");
  return page.evaluate(async (b64, name) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return window.resnetLoadWeights(bytes, name);
  }, bytes, basename(file));
}

async function run(page, url) {
  const started = performance.now();
  await page.goto(url);
  const ready = await page.evaluate(() => window.resnetReady);
  const loadMs = performance.now() - started;
  console.log(`adapter: ${ready.adapter}`);
  console.log(`model: ${ready.model}`);
  console.log(`page load to engine ready: ${loadMs.toFixed(0)} ms ` +
    `(engine start in the page: ${ready.loadMs.toFixed(0)} ms)`);
  const embedded = cliTop5(null);
  const times = await classifyAll(page, "embedded", embedded);
  console.log(`per image, embedded model: ${summary(times)}`);
  await classifyAtOnce(page, embedded);
  for (const file of LOADED) {
    const reference = cliTop5(file);
    const loadStarted = performance.now();
    const model = await loadWeights(page, file);
    const loadMs = performance.now() - loadStarted;
    console.log(`${file}: ${model}, loaded in ${loadMs.toFixed(0)} ms`);
    console.log(`per image, ${file}: ${summary(await classifyAll(page, file, reference))}`);
  }

  const refusal = await page.evaluate(async () => {
    try {
      await window.resnetLoadWeights(new TextEncoder().encode("not a safetensors file"));
      return null;
    } catch (e) {
      return e.message;
    }
  });
  check(typeof refusal === "string" && refusal.length > 0,
    `an unusable weights file was ${refusal === null ? "accepted" : "refused without a message"}`);
  console.log(`an unusable weights file is refused: ${refusal}`);
  const shown = await page.$eval("#error", (e) => e.textContent);
  check(shown === "", `the page shows an error after the checks: ${shown}`);
}

const server = await serve();
const url = `http://127.0.0.1:${server.address().port}/`;
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--enable-unsafe-webgpu"],
});
try {
  const page = await browser.newPage();
  page.on("console", (m) => console.log(`page: ${m.text()}`));
  page.on("pageerror", (e) => console.log(`page error: ${e.message}`));
  await run(page, url);
} catch (e) {
  check(false, `the page: ${e.message ?? e}`);
} finally {
  await browser.close();
  server.close();
}
console.log(`largest probability difference from the CLI: ${largestDiff.toExponential(2)}`);
const wasm = statSync(join(dist, "resnet_wgpu_web_bg.wasm")).size;
console.log(`wasm: ${wasm} bytes (${(wasm / 2 ** 20).toFixed(2)} MiB)`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
