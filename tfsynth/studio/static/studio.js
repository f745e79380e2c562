"use strict";
// The tfsynth studio page: paints a label map and an instance map, renders them with every
// loaded model through TF Serving's REST predict API, and cycles one instance's style.
// Everything model-specific comes from /studio/v1/config: what the page sends a model follows
// the kinds of its inputs (label, instance, seed, cluster_map), never the model's family.

const $ = (id) => document.getElementById(id);

const state = {
  config: null,
  height: 0, width: 0,              // the canvas (painting) size
  label: null, instance: null,      // Uint8Array / Int32Array, one entry per canvas pixel
  layout: 0,                        // bumped on every edit: a render shows one layout
  classId: 0, tool: "brush", brush: 6,
  extend: 0,                        // the instance a thing stroke extends; 0: a new one per stroke
  undo: [],
  seed: 1,                          // draws the style of every instance without a choice
  styles: new Map(),                // instance id -> chosen cluster
  outputs: new Map(),               // model name -> its panel's state
};
const UNDO_DEPTH = 40;
// Exposed for the console and the browser test: state, and counters of finished renders.
const studio = window.studio = { state, renders: 0, pending: 0 };

// ------------------------------------------------------------------------------ talking to the server

async function call(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : await response.blob();
  if (!response.ok) {
    throw new Error((data && data.error) || `${method} ${path}: HTTP ${response.status}`);
  }
  return data;
}

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = false;
}

function clearMessage() { $("message").hidden = true; }

async function attempt(action) {
  clearMessage();
  try {
    await action();
  } catch (error) {
    showMessage(error.message);
  }
}

// ------------------------------------------------------------------------------ maps and classes

const classes = () => state.config.label_space.classes;
const isThing = (id) => Boolean(classes()[id] && classes()[id].thing);
// Cityscapes instance ids: class * 1000 + k for things, the class id for stuff.
const classOf = (instanceId) => (instanceId >= 1000 ? Math.floor(instanceId / 1000) : instanceId);

function rows(values, height, width, map = (v) => v) {
  const result = new Array(height);
  for (let y = 0; y < height; y++) {
    const row = new Array(width);
    for (let x = 0; x < width; x++) row[x] = map(values[y * width + x]);
    result[y] = row;
  }
  return result;
}

// Nearest-neighbour resampling of an id map to a model's size (ids are not quantities).
function resample(values, height, width) {
  if (height === state.height && width === state.width) return values;
  const result = new values.constructor(height * width);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(state.height - 1, Math.floor((y + 0.5) * state.height / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(state.width - 1, Math.floor((x + 0.5) * state.width / width));
      result[y * width + x] = values[sy * state.width + sx];
    }
  }
  return result;
}

// A new scene (the label and instance maps as flat typed arrays); the old one stays undoable.
function setMaps(label, instance) {
  if (state.label) pushUndo();
  [state.label, state.instance] = [label, instance];
  state.styles.clear();
  edited();
}

// A scene from the server: nested lists at the canvas size, as TF Serving's JSON instances.
const setScene = (scene) => setMaps(Uint8Array.from(scene.label.flat()), Int32Array.from(scene.instance.flat()));

function pushUndo() {
  state.undo.push([state.label.slice(), state.instance.slice()]);
  if (state.undo.length > UNDO_DEPTH) state.undo.shift();
}

function undo() {
  const previous = state.undo.pop();
  if (!previous) return;
  [state.label, state.instance] = previous;
  edited();
}

function newInstanceId(classId) {
  let last = 0;
  for (const id of state.instance) if (id >= 1000 && classOf(id) === classId) last = Math.max(last, id % 1000);
  if (last >= 999) throw new Error(`${classes()[classId].name}: all 999 instance ids are in use`);
  return classId * 1000 + last + 1;
}

// The instance a stroke of the selected class paints: stuff is one region per class.
function strokeInstance() {
  if (!isThing(state.classId)) return state.classId;
  return state.extend || newInstanceId(state.classId);
}

function paintDisc(cx, cy, instanceId) {
  const radius = state.brush / 2;
  const { width, height } = state;
  for (let y = Math.max(0, Math.floor(cy - radius)); y <= Math.min(height - 1, Math.ceil(cy + radius)); y++) {
    for (let x = Math.max(0, Math.floor(cx - radius)); x <= Math.min(width - 1, Math.ceil(cx + radius)); x++) {
      if ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= radius * radius || radius < 1) {
        state.label[y * width + x] = state.classId;
        state.instance[y * width + x] = instanceId;
      }
    }
  }
}

function paintLine([x0, y0], [x1, y1], instanceId) {
  const steps = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) / Math.max(0.5, state.brush / 4)));
  for (let i = 1; i <= steps; i++) paintDisc(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps, instanceId);
}

// Flood fill of the 4-connected region sharing the clicked pixel's class and instance.
function fill(x, y, instanceId) {
  const { width, height, label, instance } = state;
  const start = y * width + x;
  const [fromLabel, fromInstance] = [label[start], instance[start]];
  if (fromLabel === state.classId && fromInstance === instanceId) return;
  const stack = [start];
  while (stack.length) {
    const p = stack.pop();
    if (label[p] !== fromLabel || instance[p] !== fromInstance) continue;
    label[p] = state.classId;
    instance[p] = instanceId;
    const px = p % width;
    if (px > 0) stack.push(p - 1);
    if (px < width - 1) stack.push(p + 1);
    if (p >= width) stack.push(p - width);
    if (p < (height - 1) * width) stack.push(p + width);
  }
}

// ------------------------------------------------------------------------------ the label canvas

function drawLabel() {
  const canvas = $("label-canvas");
  const { width, height, label, instance } = state;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  const colors = classes().map((c) => c.color);
  for (let p = 0; p < width * height; p++) {
    const color = colors[label[p]] || [0, 0, 0];
    // Instance boundaries darkened, so adjacent objects of one class stay visible.
    const x = p % width;
    const edge = (x < width - 1 && instance[p + 1] !== instance[p]) ||
                 (p + width < width * height && instance[p + width] !== instance[p]);
    const shade = edge ? 0.55 : 1;
    image.data.set([color[0] * shade, color[1] * shade, color[2] * shade, 255], p * 4);
  }
  context.putImageData(image, 0, 0);
}

function canvasPoint(event, canvas, width, height) {
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * width / box.width, (event.clientY - box.top) * height / box.height];
}

function setupPainting() {
  const canvas = $("label-canvas");
  let stroke = null;
  const pixel = ([x, y]) => [Math.min(state.width - 1, Math.max(0, Math.floor(x))),
                             Math.min(state.height - 1, Math.max(0, Math.floor(y)))];
  canvas.addEventListener("pointerdown", (event) => attempt(async () => {
    const point = canvasPoint(event, canvas, state.width, state.height);
    const [x, y] = pixel(point);
    if (state.tool === "pick") {
      selectClass(state.label[y * state.width + x]);
      if (isThing(state.classId)) selectInstance(state.instance[y * state.width + x]);
      return;
    }
    const instanceId = strokeInstance();
    pushUndo();
    if (state.tool === "fill") {
      fill(x, y, instanceId);
      edited();
      return;
    }
    stroke = { instanceId, last: point };
    canvas.setPointerCapture(event.pointerId);
    paintDisc(point[0], point[1], instanceId);
    drawLabel();
  }));
  canvas.addEventListener("pointermove", (event) => {
    if (!stroke) return;
    const point = canvasPoint(event, canvas, state.width, state.height);
    paintLine(stroke.last, point, stroke.instanceId);
    stroke.last = point;
    drawLabel();
  });
  const end = () => {
    if (!stroke) return;
    stroke = null;
    edited();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
}

function edited() {
  state.layout += 1;
  drawLabel();
  refreshInstances();
  if ($("live").checked) renderAll();
}

// ------------------------------------------------------------------------------ class and instance pickers

function buildClassPicker() {
  const list = $("classes");
  for (const item of classes()) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.classId = item.id;
    button.setAttribute("role", "option");
    button.title = `${item.id}: ${item.name}${item.thing ? " (instances: each stroke a new object)" : ""}`;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${item.color.join(",")})`;
    button.append(swatch, item.name);
    if (item.thing) {
      const mark = document.createElement("span");
      mark.className = "thing";
      mark.textContent = "◆";
      button.append(mark);
    }
    button.addEventListener("click", () => selectClass(item.id));
    list.append(button);
  }
}

function selectClass(id) {
  state.classId = id;
  state.extend = 0;
  for (const button of $("classes").children) {
    button.setAttribute("aria-selected", String(Number(button.dataset.classId) === id));
  }
  refreshInstances();
}

function selectInstance(id) {
  state.extend = id;
  refreshInstances();
}

function refreshInstances() {
  const select = $("instance");
  select.replaceChildren();
  const thing = isThing(state.classId);
  select.disabled = !thing;
  const fresh = new Option(thing ? "new object each stroke" : "— (stuff: one region)", "0");
  select.append(fresh);
  if (!thing) return;
  const ids = [...new Set(state.instance)].filter((id) => id >= 1000 && classOf(id) === state.classId);
  for (const id of ids.sort((a, b) => a - b)) {
    select.append(new Option(`extend #${id % 1000} (${id})`, String(id)));
  }
  if (!ids.includes(state.extend)) state.extend = 0;
  select.value = String(state.extend);
}

// ------------------------------------------------------------------------------ renders

const takesStyles = (model) => model.inputs.some((input) => input.kind === "cluster_map");
const takesSeed = (model) => model.inputs.some((input) => input.kind === "seed");

function modelInputs(model, label, instance) {
  const [height, width] = model.size;
  const makers = {
    label: () => rows(label, height, width),
    instance: () => rows(instance, height, width),
    seed: () => state.seed,
    cluster_map: () => rows(instance, height, width, (id) => (state.styles.has(id) ? state.styles.get(id) : -1)),
  };
  return Object.fromEntries(model.inputs.map((input) => [input.name, makers[input.kind]()]));
}

// The images of one prediction: a model's K images ("images") when it has them, else "image".
// TF Serving gives a signature with a single output as the bare value.
function predictionImages(model, prediction) {
  const named = model.outputs.length > 1 ? prediction : { [model.outputs[0]]: prediction };
  return named.images || [named.image];
}

function toImageData(pixels, height, width) {
  const data = new Uint8ClampedArray(height * width * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 4;
      const [r, g, b] = pixels[y][x];
      data[p] = r; data[p + 1] = g; data[p + 2] = b; data[p + 3] = 255;
    }
  }
  return new ImageData(data, width, height);
}

/**
 * Renders one model. With `only` (an instance id whose style changed) the new pixels of that
 * instance are pasted into the current images: the generator's receptive field spans the whole
 * picture, so a re-render would also shift other objects slightly, and the user asked to change
 * one object.
 */
async function renderModel(model, only = null) {
  const panel = state.outputs.get(model.name);
  const generation = ++panel.generation;
  const [height, width] = model.size;
  const label = resample(state.label, height, width);
  const instance = resample(state.instance, height, width);
  const layout = state.layout;
  const paste = only !== null && panel.layout === layout && panel.images.length > 0;
  panel.status.textContent = "rendering…";
  panel.status.className = "status";
  studio.pending += 1;
  const started = performance.now();
  try {
    const reply = await call("POST", `/v1/models/${encodeURIComponent(model.name)}:predict`, {
      signature_name: model.signature_name,
      instances: [modelInputs(model, label, instance)],
    });
    if (generation !== panel.generation) return;  // a later render of this model supersedes it
    const images = predictionImages(model, reply.predictions[0]).map((pixels) => toImageData(pixels, height, width));
    if (paste) {
      images.forEach((image, k) => {
        const before = panel.images[k].data;
        for (let p = 0; p < height * width; p++) {
          if (instance[p] !== only) image.data.set(before.subarray(p * 4, p * 4 + 4), p * 4);
        }
      });
    }
    panel.images = images;
    panel.instance = instance;
    panel.layout = layout;
    showImages(model, panel);
    panel.status.textContent = `${height}×${width}, ${Math.round(performance.now() - started)} ms`;
  } catch (error) {
    if (generation === panel.generation) {
      panel.status.textContent = "failed";
      panel.status.className = "status failed";
      showMessage(`${model.name}: ${error.message}`);
    }
  } finally {
    studio.pending -= 1;
    studio.renders += 1;
  }
}

function renderAll(filter = () => true) {
  return Promise.all(state.config.models.filter(filter).map((model) => renderModel(model)));
}

function showImages(model, panel) {
  while (panel.canvases.length < panel.images.length) {
    const k = panel.canvases.length;
    const canvas = document.createElement("canvas");
    canvas.dataset.model = model.name;
    canvas.dataset.index = String(k);
    if (takesStyles(model)) {
      canvas.className = "styles";
      canvas.title = "Click an object to cycle its style";
      canvas.addEventListener("click", (event) => attempt(() => cycleStyle(model, canvas, event)));
    }
    const link = document.createElement("a");
    link.href = "#";
    link.textContent = "PNG";
    link.addEventListener("click", (event) => {
      event.preventDefault();
      canvas.toBlob((blob) => save(blob, `${model.name}${panel.images.length > 1 ? `_${k}` : ""}.png`));
    });
    const cell = document.createElement("div");
    cell.append(canvas, link);
    panel.imagesBox.append(cell);
    panel.canvases.push(canvas);
  }
  panel.images.forEach((image, k) => {
    const canvas = panel.canvases[k];
    canvas.width = image.width;
    canvas.height = image.height;
    canvas.getContext("2d").putImageData(image, 0, 0);
  });
}

// The next of its class's clusters for the clicked instance (-1, drawn from the seed, first).
async function cycleStyle(model, canvas, event) {
  const panel = state.outputs.get(model.name);
  if (!panel.instance) return;
  const [height, width] = model.size;
  const [x, y] = canvasPoint(event, canvas, width, height).map(Math.floor);
  const id = panel.instance[Math.min(height - 1, y) * width + Math.min(width - 1, x)];
  const classId = classOf(id);
  const count = (model.style_clusters || [])[classId] || 0;
  const name = classes()[classId] ? classes()[classId].name : `class ${classId}`;
  if (!model.style_clusters) {
    throw new Error(`${model.name}: its export does not record style_clusters; export it again with this tfsynth`);
  }
  if (count < 2) {
    showMessage(`${name}: this export has ${count} style(s) for the class, nothing to cycle`, "info");
    return;
  }
  const next = ((state.styles.has(id) ? state.styles.get(id) : -1) + 1) % count;
  state.styles.set(id, next);
  showMessage(`${name} ${id}: style ${next + 1} of ${count}`, "info");
  await Promise.all(state.config.models.filter(takesStyles).map((m) => renderModel(m, id)));
}

function buildPanels() {
  const box = $("outputs");
  for (const model of state.config.models) {
    const figure = document.createElement("figure");
    figure.dataset.model = model.name;
    const caption = document.createElement("figcaption");
    const detail = document.createElement("span");
    detail.className = "muted";
    detail.textContent = ` ${model.family || ""} · ${model.size.join("×")}` +
      (model.num_outputs > 1 ? ` · ${model.num_outputs} outputs` : "");
    caption.append(model.name, detail);
    const imagesBox = document.createElement("div");
    imagesBox.className = "images";
    const status = document.createElement("div");
    status.className = "status";
    figure.append(caption, imagesBox, status);
    box.append(figure);
    state.outputs.set(model.name, { generation: 0, layout: -1, images: [], canvases: [], instance: null,
                                    imagesBox, status });
  }
}

// ------------------------------------------------------------------------------ files

function save(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

async function downloadMap(kind) {
  const values = kind === "label" ? state.label : state.instance;
  save(await call("POST", "/studio/v1/png", { kind, ids: rows(values, state.height, state.width) }), `${kind}.png`);
}

function base64Of(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function upload() {
  const [label] = $("upload-label").files;
  const [instance] = $("upload-instance").files;
  if (!label) throw new Error("choose a label PNG first (8-bit class ids, or colour-coded)");
  const body = { label: { b64: await base64Of(label) } };
  if (instance) body.instance = { b64: await base64Of(instance) };
  setScene(await call("POST", "/studio/v1/scenes/upload", body));
}

// ------------------------------------------------------------------------------ start

// Every model must serve the signature the page calls (TF Serving's metadata says which).
async function checkModels() {
  for (const model of state.config.models) {
    const metadata = await call("GET", `/v1/models/${encodeURIComponent(model.name)}/metadata`);
    const served = metadata.metadata.signature_def.signature_def;
    if (!(model.signature_name in served)) {
      throw new Error(`${model.name} is served without signature ${model.signature_name}; is it the same export?`);
    }
  }
}

function setupControls() {
  for (const radio of document.querySelectorAll('input[name="tool"]')) {
    radio.addEventListener("change", () => { state.tool = radio.value; });
  }
  $("brush").max = String(Math.max(8, Math.round(Math.max(state.height, state.width) / 4)));
  $("brush").addEventListener("input", () => {
    state.brush = Number($("brush").value);
    $("brush-size").textContent = $("brush").value;
  });
  state.brush = Number($("brush").value);
  $("instance").addEventListener("change", () => { state.extend = Number($("instance").value); });
  $("undo").addEventListener("click", undo);
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "z") { event.preventDefault(); undo(); }
  });
  $("blank").addEventListener("click", () => attempt(async () => {
    const count = state.height * state.width;
    const instanceId = isThing(state.classId) ? state.classId * 1000 + 1 : state.classId;
    setMaps(new Uint8Array(count).fill(state.classId), new Int32Array(count).fill(instanceId));
  }));
  $("synthetic").addEventListener("click", () => attempt(async () => {
    setScene(await call("GET", `/studio/v1/scenes/synthetic/${Number($("scene-index").value) || 0}`));
  }));
  $("load-example").addEventListener("click", () => attempt(async () => {
    setScene(await call("GET", `/studio/v1/scenes/examples/${$("example").value}`));
  }));
  $("upload").addEventListener("click", () => attempt(upload));
  $("render").addEventListener("click", () => attempt(() => renderAll()));
  $("random-styles").addEventListener("click", () => attempt(async () => {
    state.seed = 1 + Math.floor(Math.random() * 2147483646);
    state.styles.clear();
    await renderAll((model) => takesSeed(model) || takesStyles(model));
  }));
  $("download-label").addEventListener("click", () => attempt(() => downloadMap("label")));
  $("download-instance").addEventListener("click", () => attempt(() => downloadMap("instance")));
}

async function start() {
  state.config = await call("GET", "/studio/v1/config");
  [state.height, state.width] = state.config.canvas;
  const canvas = $("label-canvas");
  canvas.width = state.width;
  canvas.height = state.height;
  $("serving").textContent = `${state.config.label_space.name} · ${state.config.models.length} model(s) · ` +
    `computed ${state.config.serving === "in-process" ? "in the studio" : `by TF Serving at ${state.config.serving}`}`;
  if (state.config.examples.length) {
    $("examples-row").hidden = false;
    state.config.examples.forEach((key, index) => $("example").append(new Option(key, String(index))));
  }
  if (state.config.models.some(takesStyles)) {
    $("random-styles").hidden = false;
    $("hint").textContent = "Click an object in an image of " +
      state.config.models.filter(takesStyles).map((m) => m.name).join(", ") + " to cycle its style.";
  }
  buildClassPicker();
  buildPanels();
  setupControls();
  setupPainting();
  // Road when the label space has it: the class most scenes are painted on.
  selectClass(Math.max(0, classes().findIndex((c) => c.name === "road")));
  await Promise.all([checkModels(), (async () => {
    setScene(await call("GET", "/studio/v1/scenes/synthetic/0"));
  })()]);
}

studio.ready = start().catch((error) => showMessage(error.message));
