"""Headless Chromium, driven by its own command line: load a page from disk, report its console
errors and undecoded images, take a screenshot. Used by the report's browser test."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars")

# Put first in <head>: records uncaught errors and console.error calls, and on load writes what it
# found (images decoded or not, errors) into the DOM, which --dump-dom prints.
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(String(e.message || e.type));
}, true);
var __consoleError = console.error;
console.error = function () {
  window.__errors.push(Array.from(arguments).join(" "));
  __consoleError.apply(console, arguments);
};
window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  var result = {
    images: imgs.length,
    undecoded: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
      .map(function (i) { return i.alt || i.src.slice(0, 60); }),
    errors: window.__errors
  };
  var pre = document.createElement("pre");
  pre.id = "probe-result";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"""


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def check_page(chromium: str, page: Path, work: Path) -> dict[str, Any]:
    """Load a copy of ``page`` (the probe added; same folder, so relative paths resolve) and
    return {"images": n, "undecoded": [...], "errors": [...], "console": [lines of the log]}."""
    html = page.read_text(encoding="utf-8")
    probed = page.with_name(f".probe-{page.name}")
    probed.write_text(re.sub(r"<head>", "<head>" + PROBE, html, count=1), encoding="utf-8")
    try:
        run = subprocess.run(
            [chromium, *FLAGS, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
             "--dump-dom", probed.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        probed.unlink(missing_ok=True)
    (work / "chromium-stderr.txt").write_text(run.stderr, encoding="utf-8")
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', run.stdout, re.S)
    if found is None:
        raise AssertionError(f"chromium printed no probe result (rc {run.returncode}): {run.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    result["console"] = [ln for ln in run.stderr.splitlines() if "CONSOLE" in ln]  # the page logs nothing
    return result


def screenshot(chromium: str, page: Path, out: Path, size: str = "1300,3000") -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [chromium, *FLAGS, f"--window-size={size}", f"--screenshot={out.resolve()}", page.resolve().as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    return out
