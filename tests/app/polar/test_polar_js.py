"""app/static/polar.js under Node with a stub DOM, fetch and a fake clock: polling is bounded."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "app" / "static" / "polar.js"

HARNESS = r"""
const fs = require("fs");
let now = 0;
const timers = [];
const nodes = {};
function node(id) {
  if (!nodes[id]) nodes[id] = { id, textContent: "", className: "", hidden: false, dataset: {},
    replaceChildren() {}, append() {} };
  return nodes[id];
}
node("polar").dataset = { statusUrl: "/status", status: "provisioning" };
let fetches = 0;
const sandbox = {
  document: { getElementById: node, createElement: () => node("_" + Math.random()) },
  window: { location: { reload() { throw new Error("reloaded"); } } },
  fetch: async () => { fetches++; return { ok: true, json: async () => SNAPSHOT }; },
  setTimeout: (fn, ms) => timers.push([now + ms, fn]),
  Date: { now: () => now },
};
const SNAPSHOT = { status: "provisioning", run: { status: "running" }, steps: [], products: [],
  organization: null, webhooks: null, last_error: null, webhook_endpoint_id: null };
const body = fs.readFileSync(process.argv[2], "utf8");
new Function(...Object.keys(sandbox), body)(...Object.values(sandbox));
(async () => {
  for (let i = 0; i < 5000; i++) {
    await new Promise((r) => setImmediate(r));
    if (timers.length === 0) break;
    timers.sort((a, b) => a[0] - b[0]);
    const [at, fn] = timers.shift();
    now = at;
    fn();
  }
  await new Promise((r) => setImmediate(r));
  console.log(JSON.stringify({ pending: timers.length, fetches, now, help: node("status-help").textContent }));
})();
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_polling_stops_after_ten_minutes_and_says_so(tmp_path):
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS)
    out = subprocess.run(
        ["node", str(harness), str(SCRIPT)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["pending"] == 0  # no poll scheduled any more
    assert result["now"] <= 10 * 60 * 1000
    assert 500 < result["fetches"] <= 601  # about one a second for ten minutes
    assert "stopped updating" in result["help"] and "Reload" in result["help"]
