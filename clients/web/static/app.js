"use strict";
// The reenact page: pick a photo, stream the emotions into the grid as the gateway sends them
// (POST /api/reenact answers NDJSON, one line per image), re-render when a control changes.
(() => {
  const $ = (id) => document.getElementById(id);
  const DEBOUNCE_MS = 350;
  const HEALTH_EVERY_MS = 30000;

  const TITLES = {
    too_large: "Photo too large",
    not_image: "Not a photo the server can read",
    no_face: "No face found",
    unavailable: "Server unavailable",
    timeout: "The server took too long",
    invalid: "Request refused",
    server_error: "The server failed",
    network: "Cannot reach the page's server",
  };

  const state = {
    limits: null,
    emotions: null,
    photo: null, // the chosen File or Blob, sent as the request body
    photoUrl: null,
    faces: null, // [{index, box}] from /api/faces
    faceIndex: null, // null: the server's default, the largest face
    faceBox: null, // the box the last images were made from
    grid: { generation: 0, controller: null },
    editor: { generation: 0, controller: null, used: false, blobUrl: null },
  };

  // ---- utilities ------------------------------------------------------------------------------

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  function formatBytes(bytes) {
    if (bytes >= 1e6) return `${+(bytes / 1e6).toFixed(1)} MB`;
    if (bytes >= 1e3) return `${+(bytes / 1e3).toFixed(1)} kB`;
    return `${bytes} bytes`;
  }

  function slug(name) {
    return name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "image";
  }

  function base64Blob(text, type) {
    const raw = atob(text);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return new Blob([bytes], { type });
  }

  function showError(kind, text, detail = "") {
    $("message-title").textContent = TITLES[kind] || "Something went wrong";
    $("message-text").textContent = text;
    $("message-detail").hidden = !detail;
    $("message-detail").querySelector("p").textContent = detail;
    $("message").dataset.kind = kind;
    $("message").hidden = false;
    if (kind === "unavailable" || kind === "network") setServerStatus(false);
  }

  function hideMessage() {
    $("message").hidden = true;
  }

  function setServerStatus(ready) {
    const status = $("server-status");
    status.dataset.state = ready ? "ready" : "unavailable";
    status.textContent = ready ? "Server ready" : "Server unavailable";
  }

  async function checkHealth() {
    try {
      const response = await fetch("/api/health");
      setServerStatus(response.ok);
    } catch (err) {
      setServerStatus(false);
    }
  }

  async function errorOf(response) {
    try {
      const body = await response.json();
      return {
        kind: body.kind || "server_error",
        text: body.error || response.statusText,
        detail: body.detail || "",
      };
    } catch (err) {
      return { kind: "server_error", text: `HTTP ${response.status} ${response.statusText}` };
    }
  }

  // Calls onLine for each JSON line of an NDJSON response body as it arrives.
  async function readLines(response, onLine) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).trim();
        buffer = buffer.slice(end + 1);
        if (line) onLine(JSON.parse(line));
      }
    }
  }

  // POST the photo to /api/reenact; returns the Response or null when aborted or failed (the
  // failure is shown).
  async function postPhoto(params, controller) {
    try {
      const response = await fetch(`/api/reenact?${params}`, {
        method: "POST",
        body: state.photo,
        headers: { "Content-Type": state.photo.type || "application/octet-stream" },
        signal: controller.signal,
      });
      if (response.ok) return response;
      const error = await errorOf(response);
      if (!controller.signal.aborted) showError(error.kind, error.text, error.detail);
      return null;
    } catch (err) {
      if (err.name !== "AbortError") showError("network", String(err.message || err));
      return null;
    }
  }

  function poseParams(params) {
    for (const id of ["yaw", "pitch", "roll"]) params.set(id, $(id).value);
    if (state.faceIndex !== null) params.set("face", String(state.faceIndex));
    return params;
  }

  // ---- the emotion grid -------------------------------------------------------------------

  function selectedEmotions() {
    return [...document.querySelectorAll("#emotion-options input:checked")].map((i) => i.value);
  }

  function makeTile(name) {
    const item = document.createElement("li");
    item.className = "tile";
    item.dataset.emotion = name;
    item.innerHTML = `<figure><div class="tile-image"><span class="placeholder">Making…</span></div>
      <figcaption></figcaption></figure>
      <a class="button-link" aria-disabled="true">Download</a>`;
    item.querySelector("figcaption").textContent = name;
    const link = item.querySelector("a");
    link.download = `reenact-${slug(name)}.jpg`;
    link.setAttribute("aria-label", `Download ${name}`);
    return item;
  }

  // One tile per name, in order: existing images stay (dimmed) until their new one arrives.
  function prepareTiles(names, generation) {
    const grid = $("grid");
    const old = new Map([...grid.children].map((tile) => [tile.dataset.emotion, tile]));
    for (const [name, tile] of old) {
      if (!names.includes(name)) {
        revokeTile(tile);
        tile.remove();
      }
    }
    for (const name of names) {
      const tile = old.get(name) || makeTile(name);
      tile.dataset.state = tile.querySelector("img") ? "stale" : "waiting";
      tile.dataset.generation = String(generation);
      grid.appendChild(tile); // moves an existing tile into the new order
    }
  }

  function clearGrid() {
    for (const tile of $("grid").children) revokeTile(tile);
    $("grid").replaceChildren();
  }

  function revokeTile(tile) {
    if (tile.dataset.url) URL.revokeObjectURL(tile.dataset.url);
  }

  function fillTile(name, base64, faceBox, generation) {
    const tile = $("grid").querySelector(`li[data-emotion="${CSS.escape(name)}"]`);
    if (!tile) return;
    const blob = base64Blob(base64, "image/jpeg");
    const url = URL.createObjectURL(blob);
    revokeTile(tile);
    const frame = tile.querySelector(".tile-image");
    frame.replaceChildren();
    const img = document.createElement("img");
    img.alt = `The photo's face, ${name}`;
    img.src = url;
    frame.appendChild(img);
    const link = tile.querySelector("a");
    link.href = url;
    link.removeAttribute("aria-disabled");
    tile.dataset.url = url;
    tile.dataset.state = "ready";
    tile.dataset.generation = String(generation);
    tile.dataset.faceBox = faceBox.join(","); // x0,y0,x1,y1 of the face in the photo
    tile.blob = blob;
  }

  function failTile(name, text) {
    const tile = $("grid").querySelector(`li[data-emotion="${CSS.escape(name)}"]`);
    if (!tile) return;
    revokeTile(tile);
    delete tile.dataset.url;
    tile.blob = null;
    const note = document.createElement("span");
    note.className = "placeholder";
    note.textContent = "Not made";
    note.title = text;
    tile.querySelector(".tile-image").replaceChildren(note);
    tile.querySelector("a").setAttribute("aria-disabled", "true");
    tile.querySelector("a").removeAttribute("href");
    tile.dataset.state = "error";
  }

  function setProgress(text) {
    $("progress").textContent = text;
  }

  async function renderGrid() {
    if (!state.photo) return false;
    const names = selectedEmotions();
    state.grid.controller?.abort();
    const generation = ++state.grid.generation;
    prepareTiles(names, generation);
    $("download-all").disabled = true;
    if (!names.length) {
      setProgress("Pick at least one emotion.");
      return false;
    }
    const controller = new AbortController();
    state.grid.controller = controller;
    setProgress(`Making ${names.length} images…`);
    const params = poseParams(new URLSearchParams());
    names.forEach((name) => params.append("emotion", name));
    params.set("intensity", $("intensity").value);
    const response = await postPhoto(params, controller);
    const current = () => generation === state.grid.generation;
    if (!response) {
      if (current()) {
        clearGrid();
        setProgress("No images: see the message.");
      }
      return false;
    }
    hideMessage();
    setServerStatus(true);
    let made = 0;
    try {
      await readLines(response, (line) => {
        if (!current()) return;
        if (line.image !== undefined) {
          fillTile(line.emotion, line.image, line.face_box, generation);
          state.faceBox = line.face_box;
          made += 1;
          setProgress(`${made} of ${names.length} images`);
        } else if (line.error !== undefined) {
          line.emotions.forEach((name) => failTile(name, line.error));
          showError(line.kind, line.error, line.detail);
        }
      });
    } catch (err) {
      if (err.name === "AbortError" || !current()) return false;
      showError("network", `The answer was cut short: ${err.message || err}`);
    }
    if (!current()) return false;
    setProgress(made === names.length ? `${made} images, ready.` : `${made} of ${names.length} images.`);
    $("download-all").disabled = made === 0;
    markSelectedFace();
    return made > 0;
  }

  async function downloadAll() {
    const tiles = [...$("grid").children].filter((tile) => tile.blob);
    const files = [];
    for (const tile of tiles) {
      files.push({
        name: `reenact-${slug(tile.dataset.emotion)}.jpg`,
        bytes: new Uint8Array(await tile.blob.arrayBuffer()),
      });
    }
    const url = URL.createObjectURL(ReenactZip.build(files));
    const link = document.createElement("a");
    link.href = url;
    link.download = "reenact-emotions.zip";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  // ---- faces ------------------------------------------------------------------------------

  // Intersection over union of two [x0, y0, x1, y1] boxes. The default face is found by a
  // cheaper detection pass than the numbered ones, so its box differs by a few pixels.
  function overlap(a, b) {
    if (!a || !b) return 0;
    const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
    const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
    if (w <= 0 || h <= 0) return 0;
    const area = (box) => (box[2] - box[0]) * (box[3] - box[1]);
    return (w * h) / (area(a) + area(b) - w * h);
  }

  async function detectFaces(photo) {
    let body;
    try {
      const response = await fetch("/api/faces", { method: "POST", body: photo });
      if (!response.ok || photo !== state.photo) return; // the grid's request reported failures
      body = await response.json();
    } catch (err) {
      return;
    }
    state.faces = body.faces;
    const count = body.count;
    const shown = body.faces.length;
    $("photo-caption").textContent = count === 1 ? "1 face found." :
      `${count} faces found, numbered from the left` +
      (shown < count ? ` (the first ${shown} can be picked).` : ".");
    drawFaces();
  }

  function drawFaces() {
    const img = $("photo");
    const boxes = $("face-boxes");
    const options = $("face-options");
    boxes.replaceChildren();
    options.replaceChildren();
    const faces = state.faces || [];
    $("face-picker").hidden = faces.length < 2;
    if (faces.length < 2 || !img.naturalWidth) return;
    for (const face of faces) {
      const number = face.index + 1;
      const label = document.createElement("label");
      label.innerHTML = `<input type="radio" name="face"> <span></span>`;
      const radio = label.querySelector("input");
      radio.value = String(face.index);
      radio.disabled = face.box === null;
      label.querySelector("span").textContent = `Face ${number}`;
      radio.addEventListener("change", () => pickFace(face.index));
      options.appendChild(label);
      if (face.box === null) continue;
      const [x0, y0, x1, y1] = face.box;
      const mark = document.createElement("div");
      mark.className = "face-box";
      mark.dataset.index = String(face.index);
      Object.assign(mark.style, {
        left: `${(100 * x0) / img.naturalWidth}%`,
        top: `${(100 * y0) / img.naturalHeight}%`,
        width: `${(100 * (x1 - x0)) / img.naturalWidth}%`,
        height: `${(100 * (y1 - y0)) / img.naturalHeight}%`,
      });
      mark.innerHTML = `<span>${number}</span>`;
      boxes.appendChild(mark);
    }
    markSelectedFace();
  }

  // The face the images were made from: the picked one, or the one whose box the server sent.
  function markSelectedFace() {
    const faces = state.faces || [];
    let selected = state.faceIndex;
    if (selected === null) {
      const match = faces.find((face) => overlap(face.box, state.faceBox) > 0.5);
      selected = match ? match.index : null;
    }
    for (const radio of document.querySelectorAll("#face-options input")) {
      radio.checked = selected !== null && radio.value === String(selected);
    }
    for (const mark of document.querySelectorAll("#face-boxes .face-box")) {
      mark.dataset.selected = String(mark.dataset.index === String(selected));
    }
  }

  function pickFace(index) {
    state.faceIndex = index;
    markSelectedFace();
    renderGrid();
    if (state.editor.used) renderEditor();
  }

  // ---- the photo --------------------------------------------------------------------------

  async function usePhoto(file) {
    if (!file) return;
    hideMessage();
    if (state.limits && file.size > state.limits.max_bytes) {
      showError("too_large", `The photo is ${file.size.toLocaleString("en")} bytes; the limit is ` +
        `${state.limits.max_bytes.toLocaleString("en")} bytes (${formatBytes(state.limits.max_bytes)}): ` +
        "send a smaller photo");
      return;
    }
    state.photo = file;
    state.faces = null;
    state.faceIndex = null;
    state.faceBox = null;
    if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
    state.photoUrl = URL.createObjectURL(file);
    $("photo").src = state.photoUrl;
    $("preview").hidden = false;
    $("photo-caption").textContent = file.name ? `${file.name}, ${formatBytes(file.size)}` : "";
    drawFaces();
    if (state.editor.used) renderEditor();
    const ok = await renderGrid();
    if (ok && file === state.photo) detectFaces(file);
    else if (file === state.photo && ["not_image", "too_large"].includes($("message").dataset.kind)) {
      $("preview").hidden = true;
    }
  }

  function setUpPhotoInput() {
    $("choose-photo").addEventListener("click", () => $("photo-file").click());
    $("take-photo").addEventListener("click", () => $("photo-camera").click());
    for (const id of ["photo-file", "photo-camera"]) {
      $(id).addEventListener("change", (event) => {
        usePhoto(event.target.files[0]);
        event.target.value = ""; // the same file chosen again is a new choice
      });
    }
    const zone = $("dropzone");
    document.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.dataset.dragging = "true";
    });
    document.addEventListener("dragleave", (event) => {
      if (event.relatedTarget === null) zone.dataset.dragging = "false";
    });
    document.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.dataset.dragging = "false";
      usePhoto(event.dataTransfer.files[0]);
    });
    document.addEventListener("paste", (event) => {
      const file = [...(event.clipboardData?.files || [])][0];
      if (file) usePhoto(file);
    });
    $("photo").addEventListener("load", drawFaces);
  }

  // ---- controls ---------------------------------------------------------------------------

  const scheduleGrid = debounce(() => renderGrid(), DEBOUNCE_MS);
  const scheduleEditor = debounce(() => renderEditor(), DEBOUNCE_MS);

  function showValue(id) {
    const value = Number($(id).value);
    $(`${id}-value`).textContent = id === "intensity" ? value.toFixed(2) : `${value}°`;
  }

  function setUpSliders(limits) {
    const ranges = {
      intensity: [0, limits.max_intensity],
      yaw: [-limits.max_head_pose_deg.yaw, limits.max_head_pose_deg.yaw],
      pitch: [-limits.max_head_pose_deg.pitch, limits.max_head_pose_deg.pitch],
      roll: [-limits.max_head_pose_deg.roll, limits.max_head_pose_deg.roll],
    };
    for (const [id, [min, max]] of Object.entries(ranges)) {
      const slider = $(id);
      const start = slider.getAttribute("value");
      slider.min = String(min);
      slider.max = String(max);
      slider.value = start;
      slider.disabled = false;
      showValue(id);
      slider.addEventListener("input", () => {
        showValue(id);
        scheduleGrid();
        if (id !== "intensity" && state.editor.used) scheduleEditor();
      });
    }
    $("reset-sliders").addEventListener("click", () => {
      for (const id of Object.keys(ranges)) {
        $(id).value = $(id).getAttribute("value");
        showValue(id);
      }
      renderGrid();
      if (state.editor.used) renderEditor();
    });
  }

  function setUpEmotions(catalogue) {
    const box = $("emotion-options");
    const ordered = [...catalogue.default, ...catalogue.emotions.filter((n) => !catalogue.default.includes(n))];
    for (const name of ordered) {
      const label = document.createElement("label");
      label.innerHTML = `<input type="checkbox"> <span></span>`;
      const input = label.querySelector("input");
      input.value = name;
      input.checked = catalogue.default.includes(name);
      label.querySelector("span").textContent = name;
      input.addEventListener("change", scheduleGrid);
      box.appendChild(label);
    }
    const choose = (pick) => () => {
      for (const input of box.querySelectorAll("input")) input.checked = pick(input.value);
      renderGrid();
    };
    $("emotions-default").addEventListener("click", choose((n) => catalogue.default.includes(n)));
    $("emotions-all").addEventListener("click", choose(() => true));
    $("emotions-none").addEventListener("click", choose(() => false));
  }

  function showLimits(limits) {
    const text = `${limits.accepted_text}, up to ${formatBytes(limits.max_bytes)} and ` +
      `${+(limits.max_pixels / 1e6).toFixed(1)} megapixels.`;
    $("limits").textContent = text;
    $("limits-footer").textContent = `Limits: ${text} At most ${limits.max_targets} emotions at once.`;
  }

  // ---- the expression editor ---------------------------------------------------------------

  function setUpEditor(catalogue) {
    const box = $("blendshape-sliders");
    for (const name of catalogue.blendshapes) {
      const row = document.createElement("div");
      row.className = "slider";
      row.innerHTML = `<label></label><input type="range" min="0" max="1" step="0.05" value="0">
        <output>0.00</output>`;
      const input = row.querySelector("input");
      input.id = `blendshape-${name}`;
      input.dataset.blendshape = name;
      row.querySelector("label").htmlFor = input.id;
      row.querySelector("label").textContent = name;
      const output = row.querySelector("output");
      input.addEventListener("input", () => {
        output.textContent = Number(input.value).toFixed(2);
        state.editor.used = true;
        scheduleEditor();
      });
      box.appendChild(row);
    }
    $("editor-reset").addEventListener("click", () => {
      for (const input of box.querySelectorAll("input")) {
        input.value = "0";
        input.nextElementSibling.textContent = "0.00";
      }
      if (state.editor.used) renderEditor();
    });
  }

  async function renderEditor() {
    if (!state.photo) return;
    state.editor.controller?.abort();
    const generation = ++state.editor.generation;
    const controller = new AbortController();
    state.editor.controller = controller;
    const frame = $("editor-frame");
    frame.dataset.state = $("editor-image").hidden ? "waiting" : "stale";
    const params = poseParams(new URLSearchParams());
    for (const input of document.querySelectorAll("#blendshape-sliders input")) {
      params.append("blendshape", `${input.dataset.blendshape}:${input.value}`);
    }
    const response = await postPhoto(params, controller);
    if (!response) {
      if (generation === state.editor.generation) frame.dataset.state = "error";
      return;
    }
    try {
      await readLines(response, (line) => {
        if (generation !== state.editor.generation || line.image === undefined) return;
        const url = URL.createObjectURL(base64Blob(line.image, "image/jpeg"));
        if (state.editor.blobUrl) URL.revokeObjectURL(state.editor.blobUrl);
        state.editor.blobUrl = url;
        $("editor-image").src = url;
        $("editor-image").hidden = false;
        $("editor-placeholder").hidden = true;
        $("editor-download").href = url;
        $("editor-download").hidden = false;
        frame.dataset.state = "ready";
      });
    } catch (err) {
      if (err.name !== "AbortError") showError("network", String(err.message || err));
    }
  }

  // ---- start ------------------------------------------------------------------------------

  async function start() {
    setUpPhotoInput();
    $("download-all").addEventListener("click", downloadAll);
    checkHealth();
    setInterval(checkHealth, HEALTH_EVERY_MS);
    try {
      const [limits, catalogue] = await Promise.all(
        ["/api/limits", "/api/emotions"].map((url) => fetch(url).then((r) => r.json())),
      );
      state.limits = limits;
      state.emotions = catalogue;
      showLimits(limits);
      setUpSliders(limits);
      setUpEmotions(catalogue);
      setUpEditor(catalogue);
      document.body.dataset.ready = "true";
    } catch (err) {
      showError("network", `The page could not load its settings: ${err.message || err}`);
    }
  }

  start();
})();
