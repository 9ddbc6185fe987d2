// The playground: a thin client of the public API (GET/PUT /v1/schemas, POST /v1/extract). No framework, no build.
//
// Streaming: the request asks for server-sent events first (`Accept: text/event-stream`) and JSON second, and
// /v1/extract streams: `partial` events (the object so far) are shown as progress, an `attempt` event (a re-ask) too,
// a `final` event carries the same answer as the JSON response, an `error` event a problem document.

const ACCEPT = "text/event-stream, application/json;q=0.9";
const NEW_SCHEMA = "__new__"; // schema names start with a letter or digit
const KEY_STORAGE = "extractor.apiKey";
const EXAMPLE = {
  schema: "receipt",
  text: "ACME Market\n2024-03-05\nBread 2.50\nMilk 1.20\nTOTAL 3.70 EUR",
};
const MATCH_LABEL = { exact: "grounded", normalized: "fuzzy", missing: "not found", na: "n/a" };

const $ = (id) => document.getElementById(id);
let schemas = [];

// --- small DOM helpers: text goes in through textContent only, never as HTML --------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function show(id, visible) {
  $(id).hidden = !visible;
}

// --- the API ------------------------------------------------------------------------------------------------------

function apiKey() {
  return $("api-key").value.trim();
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

// A problem document (RFC 9457): from the service, or made here (without a status) for a mistake caught before sending.
class Problem extends Error {
  constructor(body, status = undefined) {
    super(body.detail || body.title || `HTTP ${status}`);
    this.body = { status, ...body };
  }
}

async function problemOf(response) {
  let body;
  try {
    body = await response.json();
  } catch {
    body = { title: response.statusText, detail: `the service answered ${response.status}` };
  }
  return new Problem(body, response.status);
}

async function callJson(method, path, body) {
  const init = { method, headers: headers({ Accept: "application/json" }) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await problemOf(response);
  return response.json();
}

// POST /v1/extract: server-sent events, or a JSON answer from a service that does not stream (see the top).
async function extract(body, onProgress) {
  const response = await fetch("/v1/extract", {
    method: "POST",
    headers: headers({ Accept: ACCEPT, "Content-Type": "application/json" }),
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await problemOf(response);
  const type = response.headers.get("content-type") || "";
  if (!type.startsWith("text/event-stream")) return response.json();
  for await (const { event, data } of readEvents(response)) {
    if (event === "error") throw new Problem(data, data.status || 500);
    if (event === "final" || event === "result") return data;
    onProgress(event, data);
  }
  throw new Problem({ title: "Stream ended", detail: "the event stream ended before its final event" }, 502);
}

async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const parsed = parseEvent(block);
      if (parsed) yield parsed;
    }
  }
}

function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return null;
  const text = data.join("\n");
  try {
    return { event, data: JSON.parse(text) };
  } catch {
    return { event, data: text };
  }
}

// --- the API key ----------------------------------------------------------------------------------------------------

function askForKey() {
  const input = $("api-key");
  input.classList.add("wanted");
  input.focus();
  const refused = apiKey() ? "The service refused this API key." : "This service needs an API key.";
  setSchemaMessage(`${refused} Enter one above.`, "error");
}

function useKey(event) {
  event.preventDefault();
  const key = apiKey();
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  $("api-key").classList.remove("wanted");
  loadSchemas();
}

// --- schemas --------------------------------------------------------------------------------------------------------

function setSchemaMessage(text, kind = "info") {
  const message = $("schema-message");
  message.textContent = text || "";
  message.className = `message ${kind}`;
  message.hidden = !text;
}

async function loadSchemas(select) {
  const picker = $("schema-select");
  const previous = select || picker.value;
  try {
    schemas = (await callJson("GET", "/v1/schemas")).filter((schema) => !schema.retired);
  } catch (error) {
    schemas = [];
    picker.replaceChildren(el("option", {}, "(no schemas: see below)"));
    picker.disabled = true;
    show("new-schema", false);
    show("schema-view", false);
    if (error instanceof Problem && error.body.status === 401) {
      askForKey();
    } else {
      setSchemaMessage(`Could not list the schemas: ${error.message}`, "error");
    }
    return;
  }
  setSchemaMessage("");
  fillSchemaOptions(previous);
}

function fillSchemaOptions(wanted) {
  const picker = $("schema-select");
  const bundled = schemas.filter((schema) => schema.bundled);
  const own = schemas.filter((schema) => !schema.bundled);
  const group = (label, items) =>
    el(
      "optgroup",
      { label },
      ...items.map((schema) => el("option", { value: schema.name }, `${schema.name}  (v${schema.version})`)),
    );
  picker.replaceChildren(
    ...(own.length ? [group("registered", own)] : []),
    ...(bundled.length ? [group("bundled", bundled)] : []),
    el("option", { value: NEW_SCHEMA }, "+ paste a new schema…"),
  );
  const names = schemas.map((schema) => schema.name);
  picker.value = names.includes(wanted) || wanted === NEW_SCHEMA ? wanted : names[0] || NEW_SCHEMA;
  picker.disabled = false;
  schemaChanged();
}

function selectedSchema() {
  return schemas.find((schema) => schema.name === $("schema-select").value);
}

function schemaChanged() {
  const schema = selectedSchema();
  show("new-schema", !schema);
  show("schema-view", Boolean(schema));
  $("run").textContent = schema ? "Run" : "Register and run";
  if (schema) {
    $("schema-description").textContent = schema.description ? `· ${schema.description}` : "";
    $("schema-json-view").replaceChildren(renderJson(schema.json_schema));
  }
}

function pastedDefinition() {
  const raw = $("schema-json").value.trim();
  if (!raw) throw new Problem({ title: "No schema", detail: "paste a JSON Schema first" });
  let parsed;
  try {
    parsed = JSON.parse(raw);
  } catch (error) {
    throw new Problem({ title: "Not JSON", detail: `the pasted schema is not valid JSON: ${error.message}` });
  }
  const isDefinition = parsed && typeof parsed === "object" && "json_schema" in parsed;
  return isDefinition ? parsed : { json_schema: parsed };
}

async function registerPasted() {
  const name = $("schema-name").value.trim();
  if (!name) {
    $("schema-name").focus();
    throw new Problem({ title: "No name", detail: "give the new schema a name" });
  }
  const version = await callJson("PUT", `/v1/schemas/${encodeURIComponent(name)}`, pastedDefinition());
  await loadSchemas(version.name);
  setSchemaMessage(`Registered ${version.name}@${version.version}.`, "ok");
  return version.name;
}

async function onRegister() {
  try {
    await registerPasted();
    showProblem(null);
  } catch (error) {
    handleError(error);
  }
}

// --- the text -------------------------------------------------------------------------------------------------------

async function loadFile(file) {
  if (!file) return;
  $("text").value = await file.text();
  $("run-state").textContent = `${file.name} (${file.size.toLocaleString()} bytes)`;
}

function wireDrop() {
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    loadFile(event.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (event) => loadFile(event.target.files[0]));
  // A file dropped beside the zone would make the browser leave the page for it.
  for (const type of ["dragover", "drop"]) document.addEventListener(type, (event) => event.preventDefault());
}

// --- run ------------------------------------------------------------------------------------------------------------

async function run() {
  const button = $("run");
  if (button.disabled) return;
  if ($("schema-select").disabled) await loadSchemas(); // no schemas yet: no key given, or the service was down
  if ($("schema-select").disabled) return;
  const text = $("text").value;
  const options = { cache: $("use-cache").checked };
  if ($("grounding").value) options.grounding = $("grounding").value;
  button.disabled = true;
  const started = performance.now();
  const ticker = setInterval(() => {
    $("run-state").textContent = `running… ${((performance.now() - started) / 1000).toFixed(1)} s`;
  }, 100);
  try {
    const name = selectedSchema() ? selectedSchema().name : await registerPasted();
    const result = await extract({ schema: name, text, options }, showProgress);
    showResult(result, text);
    $("run-state").textContent = `answered in ${((performance.now() - started) / 1000).toFixed(2)} s`;
  } catch (error) {
    handleError(error);
    $("run-state").textContent = "";
  } finally {
    clearInterval(ticker);
    button.disabled = false;
  }
}

function handleError(error) {
  if (!(error instanceof Problem)) {
    showProblem({ title: "Request failed", detail: String(error.message || error) });
    return;
  }
  if (error.body.status === 401) askForKey();
  showProblem(error.body);
}

function showProgress(event, data) {
  show("placeholder", false);
  show("result", true);
  $("stats").replaceChildren(el("span", { class: "badge running" }, event));
  const partial = data && typeof data === "object" && "data" in data ? data.data : data;
  $("json").replaceChildren(renderJson(partial));
}

// --- the answer -----------------------------------------------------------------------------------------------------

function showProblem(body) {
  const box = $("problem");
  if (!body) {
    box.hidden = true;
    return;
  }
  const { type, title, status, detail, ...extra } = body;
  box.replaceChildren(
    el("div", { class: "problem-title" }, `${status ? `${status} · ` : ""}${title || "Error"}`, type ? el("code", {}, type) : null),
    el("p", {}, detail || ""),
    Object.keys(extra).length ? el("pre", { class: "json" }, renderJson(extra)) : null,
  );
  box.hidden = false;
  show("placeholder", false);
  show("result", false);
}

function showResult(result, text) {
  showProblem(null);
  show("placeholder", false);
  show("result", true);
  const rows = fieldRows(result);
  $("stats").replaceChildren(...renderStats(result));
  $("highlighted").replaceChildren(...renderHighlights(text, rows));
  $("fields").tBodies[0].replaceChildren(...rows.map(renderFieldRow));
  $("repairs").replaceChildren(...(result.repairs || []).map((repair) => el("li", {}, repair)));
  show("repairs-block", (result.repairs || []).length > 0);
  $("json").replaceChildren(renderJson(result.data));
  $("raw-json").replaceChildren(renderJson(result));
}

function renderStats(result) {
  const usage = result.usage || {};
  const timings = result.timings_ms || {};
  const steps = Object.entries(timings)
    .filter(([step]) => step !== "total")
    .map(([step, ms]) => `${step} ${ms.toFixed(1)} ms`)
    .join(" · ");
  const stat = (label, value, title) =>
    el("span", { class: "stat", ...(title ? { title } : {}) }, el("small", {}, label), String(value));
  return [
    el("span", { id: "status", class: `badge ${result.status}` }, result.status),
    stat("schema", result.schema),
    stat("model", result.model),
    stat("enforcement", result.enforcement),
    stat("attempts", result.attempts),
    stat("tokens", usage.total_tokens, `prompt ${usage.prompt_tokens}, completion ${usage.completion_tokens}`),
    stat("time", timings.total === undefined ? "?" : `${timings.total.toFixed(1)} ms`, steps),
    stat("cached", result.cached ? "yes" : "no"),
  ];
}

// Each leaf the service reports, with its value in `data` and how it was found.
function fieldRows(result) {
  return Object.entries(result.fields || {}).map(([pointer, info]) => {
    let kind = "na";
    if (info.grounded === true) kind = info.match === "exact" ? "exact" : "normalized";
    else if (info.grounded === false) kind = "missing";
    return { pointer, value: resolvePointer(result.data, pointer), span: info.span, kind };
  });
}

function resolvePointer(data, pointer) {
  let node = data;
  for (const token of pointer.split("/").slice(1)) {
    if (node === null || typeof node !== "object") return undefined;
    node = node[token.replaceAll("~1", "/").replaceAll("~0", "~")];
  }
  return node;
}

function renderFieldRow(row) {
  const tr = el(
    "tr",
    { class: `kind-${row.kind}`, dataset: { pointer: row.pointer } },
    el("td", {}, el("code", {}, row.pointer)),
    el("td", { class: "value" }, JSON.stringify(row.value)),
    el("td", {}, el("span", { class: `tag ${row.kind}` }, MATCH_LABEL[row.kind])),
    el("td", { class: "span" }, row.span ? `${row.span[0]}–${row.span[1]}` : "—"),
  );
  if (row.span) tr.addEventListener("click", () => flashMark(row.pointer));
  return tr;
}

function flashMark(pointer) {
  const marks = [...$("highlighted").querySelectorAll("mark")].filter((mark) =>
    mark.dataset.pointers.split(" ").includes(pointer),
  );
  if (!marks.length) return;
  marks[0].scrollIntoView({ block: "center", behavior: "smooth" });
  for (const mark of marks) {
    mark.classList.remove("flash");
    void mark.offsetWidth; // restart the animation
    mark.classList.add("flash");
  }
}

// Spans are offsets in code points (Python's str); JavaScript strings index UTF-16 units.
function codePointOffsets(text) {
  const offsets = [0];
  let unit = 0;
  for (const char of text) {
    unit += char.length;
    offsets.push(unit);
  }
  return offsets;
}

// The text cut at every span's ends; each piece covered by spans becomes one <mark> naming every field on it.
function renderHighlights(text, rows) {
  const offsets = codePointOffsets(text);
  const spans = rows
    .filter((row) => row.span && row.span[1] > row.span[0] && row.span[1] < offsets.length)
    .map((row) => ({ start: offsets[row.span[0]], end: offsets[row.span[1]], row }));
  const cuts = [...new Set([0, text.length, ...spans.flatMap((span) => [span.start, span.end])])].sort((a, b) => a - b);
  const pieces = [];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const [start, end] = [cuts[i], cuts[i + 1]];
    const covering = spans.filter((span) => span.start <= start && end <= span.end).map((span) => span.row);
    const piece = text.slice(start, end);
    if (!covering.length) {
      pieces.push(piece);
      continue;
    }
    const kind = covering.some((row) => row.kind === "exact") ? "exact" : "normalized";
    const pointers = covering.map((row) => row.pointer);
    const title = covering.map((row) => `${row.pointer} · ${MATCH_LABEL[row.kind]}`).join("\n");
    pieces.push(el("mark", { class: kind, title, dataset: { pointers: pointers.join(" ") } }, piece));
  }
  return pieces;
}

// JSON, indented, with keys, strings, numbers and literals in their own colours.
function renderJson(value) {
  const out = document.createDocumentFragment();
  const token = (kind, text) => out.append(el("span", { class: `j-${kind}` }, text));
  const walk = (node, indent) => {
    const pad = "  ".repeat(indent + 1);
    if (Array.isArray(node) || (node && typeof node === "object")) {
      const entries = Array.isArray(node) ? node.map((item) => [null, item]) : Object.entries(node);
      const [open, close] = Array.isArray(node) ? ["[", "]"] : ["{", "}"];
      if (!entries.length) return out.append(open + close);
      out.append(`${open}\n`);
      entries.forEach(([key, item], index) => {
        out.append(pad);
        if (key !== null) {
          token("key", JSON.stringify(key));
          out.append(": ");
        }
        walk(item, indent + 1);
        out.append(index + 1 < entries.length ? ",\n" : "\n");
      });
      out.append(`${"  ".repeat(indent)}${close}`);
    } else if (typeof node === "string") token("string", JSON.stringify(node));
    else if (typeof node === "number") token("number", String(node));
    else token("literal", String(node));
  };
  walk(value === undefined ? null : value, 0);
  return out;
}

// --- start ----------------------------------------------------------------------------------------------------------

function tryExample() {
  if (schemas.some((schema) => schema.name === EXAMPLE.schema)) {
    $("schema-select").value = EXAMPLE.schema;
    schemaChanged();
  }
  $("text").value = EXAMPLE.text;
}

function start() {
  $("api-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
  $("key-form").addEventListener("submit", useKey);
  $("schema-select").addEventListener("change", schemaChanged);
  $("register").addEventListener("click", onRegister);
  $("run").addEventListener("click", run);
  $("example").addEventListener("click", tryExample);
  $("copy").addEventListener("click", () => navigator.clipboard.writeText($("json").textContent));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) run();
  });
  wireDrop();
  loadSchemas();
}

start();
