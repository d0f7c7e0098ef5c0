// The Polar page, live: poll the status JSON every second while a run is under way, for at most
// MAX_POLL_MS (a run stuck on the server must not keep a forgotten tab polling forever); then say so.
// No inline script (CSP: script-src 'self'); every value goes in with textContent.
(function () {
  "use strict";
  const root = document.getElementById("polar");
  if (!root) return;
  const url = root.dataset.statusUrl;
  const initial = root.dataset.status;
  const LIVE = new Set(["connecting", "provisioning"]);
  const MAX_POLL_MS = 10 * 60 * 1000;
  const startedAt = Date.now();
  const LABELS = {
    not_connected: "Not connected", connecting: "Connecting", awaiting_organization: "Choose an organization",
    provisioning: "Setting up", ready: "Ready", failed: "Failed", needs_reconnect: "Reconnect needed",
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function renderSteps(steps) {
    const list = document.getElementById("steps");
    if (!steps || steps.length === 0) {
      list.replaceChildren(el("li", "muted", "No provisioning run yet."));
      return;
    }
    list.replaceChildren(...steps.map((step) => {
      const item = el("li", "step step-" + step.status);
      item.append(
        el("span", "step-name", String(step.name).replaceAll("_", " ")),
        el("span", "step-status", step.status),
        el("span", "step-duration muted", step.duration_ms == null ? "" : step.duration_ms + " ms"),
      );
      if (step.error) item.append(el("span", "step-error", step.error));
      return item;
    }));
  }

  function renderProducts(products) {
    const body = document.getElementById("products");
    if (!products || products.length === 0) {
      const row = el("tr");
      const cell = el("td", "muted", "No products yet.");
      cell.colSpan = 4;
      row.append(cell);
      body.replaceChildren(row);
      return;
    }
    body.replaceChildren(...products.map((product) => {
      const row = el("tr");
      const id = el("td");
      id.append(el("code", "", product.polar_product_id));
      row.append(
        el("td", "", product.name || product.plan_id),
        el("td", "price", (product.prices || []).join("; ")),
        el("td", "billing", product.billing || ""),
        id,
      );
      return row;
    }));
  }

  function render(snapshot) {
    const badge = document.getElementById("status-badge");
    badge.className = "status status-" + snapshot.status;
    badge.textContent = LABELS[snapshot.status] || snapshot.status;
    const org = snapshot.organization;
    const orgNode = document.getElementById("organization");
    orgNode.replaceChildren();
    if (org) {
      orgNode.append(String(org.name || org.id) + " ", el("code", "", org.slug || ""));
    } else {
      orgNode.textContent = "—";
    }
    document.getElementById("webhook-endpoint").textContent = snapshot.webhook_endpoint_id || "—";
    document.getElementById("webhook-url").textContent = snapshot.webhook_url || "—";
    const hooks = snapshot.webhooks;
    const hooksNode = document.getElementById("webhook-events");
    if (hooks && hooks.received) {
      const at = hooks.last_received_at ? " at " + hooks.last_received_at.slice(0, 16).replace("T", " ") + " UTC" : "";
      hooksNode.replaceChildren(hooks.received + " received, the latest ", el("code", "", hooks.last_type), at);
    } else {
      hooksNode.textContent = "none yet";
    }
    const error = document.getElementById("last-error");
    error.textContent = snapshot.last_error || "";
    error.hidden = !snapshot.last_error;
    renderSteps(snapshot.steps);
    renderProducts(snapshot.products);
  }

  function isLive(snapshot) {
    const run = snapshot.run;
    return LIVE.has(snapshot.status) || Boolean(run && (run.status === "queued" || run.status === "running"));
  }

  function stopPolling() {
    const help = document.getElementById("status-help");
    if (help) {
      help.textContent = "This page stopped updating after 10 minutes. Reload it to see the latest status.";
    }
  }

  function later(ms) {
    if (Date.now() - startedAt + ms > MAX_POLL_MS) {
      stopPolling();
      return;
    }
    setTimeout(poll, ms);
  }

  async function poll() {
    let snapshot;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error("status " + response.status);
      snapshot = await response.json();
    } catch (_error) {
      later(3000);
      return;
    }
    render(snapshot);
    if (isLive(snapshot)) {
      later(1000);
    } else if (snapshot.status !== initial) {
      window.location.reload(); // the actions (buttons, chooser) depend on the final state
    }
  }

  if (LIVE.has(initial)) poll();
})();
