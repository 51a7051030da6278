// The page's two forms: send JSON to the API, show the answer or its error message.
"use strict";

const percent = (p) => `${(100 * p).toFixed(1)}%`;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

async function postJson(path, body) {
  const headers = { "Content-Type": "application/json" };
  const key = document.getElementById("api-key");
  if (key && key.value) headers["X-API-Key"] = key.value;
  const response = await fetch(path, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
  let answer;
  try {
    answer = await response.json();
  } catch {
    throw new Error(`The server answered ${response.status} without JSON.`);
  }
  if (!response.ok) {
    const error = answer.error || {};  // the message already names the field at fault
    throw new Error(error.message || response.statusText);
  }
  return answer;
}

function bar(label, p, highlight) {
  const meter = el("div", { class: "bar", role: "img", "aria-label": `${label}: ${percent(p)}` });
  const fill = el("span", { class: highlight ? "fill best" : "fill" });
  fill.style.width = percent(p);
  meter.append(fill);
  return el("div", { class: "bar-row" }, el("span", { class: "bar-label" }, label), meter,
            el("span", { class: "bar-value" }, percent(p)));
}

function showError(target, error) {
  target.replaceChildren(el("p", { class: "error", role: "alert" }, error.message));
}

async function submitSentiment(event) {
  event.preventDefault();
  const target = document.getElementById("sentiment-result");
  const text = document.getElementById("review").value;
  target.replaceChildren(el("p", { class: "pending" }, "Reading the review…"));
  try {
    const answer = await postJson("/sentiment", { text });
    const verdict = el("p", { class: `verdict ${answer.label}` },
                       answer.label === "positive" ? "Positive" : "Negative");
    const bars = Object.entries(answer.probabilities)
      .map(([label, p]) => bar(label, p, label === answer.label));
    target.replaceChildren(verdict, ...bars);
  } catch (error) {
    showError(target, error);
  }
}

async function submitIris(event) {
  event.preventDefault();
  const target = document.getElementById("iris-result");
  const inputs = [...event.target.querySelectorAll("input[type=number]")];
  const features = inputs.map((input) => (input.value.trim() === "" ? null : Number(input.value)));
  try {
    const answer = await postJson("/predict", { features });
    const verdict = el("p", { class: "verdict" }, `Iris ${answer.prediction}`);
    const bars = Object.entries(answer.probabilities)
      .map(([label, p]) => bar(label, p, label === answer.prediction));
    target.replaceChildren(verdict, ...bars);
  } catch (error) {
    showError(target, error);
  }
}

// A form whose model is not loaded has its fieldset disabled (the reason is shown above it);
// requestSubmit() would still send it, so every programmatic submit goes through here.
function submitUnlessDisabled(form) {
  if (!form.querySelector("fieldset:disabled")) form.requestSubmit();
}

function wireExamples() {
  for (const button of document.querySelectorAll("[data-review]")) {
    button.addEventListener("click", () => {
      document.getElementById("review").value = button.dataset.review;
      submitUnlessDisabled(document.getElementById("sentiment-form"));
    });
  }
  for (const button of document.querySelectorAll("[data-iris]")) {
    button.addEventListener("click", () => {
      const values = button.dataset.iris.split(",");
      const inputs = document.querySelectorAll("#iris-form input[type=number]");
      inputs.forEach((input, i) => { input.value = values[i]; });
      submitUnlessDisabled(document.getElementById("iris-form"));
    });
  }
}

// The curl lines name this server as the browser reached it (never from the Host header).
function showOrigin() {
  for (const span of document.querySelectorAll("code .origin")) span.textContent = location.origin;
}

function wireCopyButtons() {
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", async () => {
      const text = button.parentElement.querySelector("code").textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Select and copy";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sentiment-form").addEventListener("submit", submitSentiment);
  document.getElementById("iris-form").addEventListener("submit", submitIris);
  document.getElementById("review").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submitUnlessDisabled(document.getElementById("sentiment-form"));
    }
  });
  wireExamples();
  wireCopyButtons();
  showOrigin();
});
