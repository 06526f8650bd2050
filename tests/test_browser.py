"""The HTML report in a real browser: headless Chromium (Debian's ``chromium``) loads ``index.html``
and reports, from inside the page, whether every image decoded and whether every section has
content. ``./setup.sh pytest`` installs Chromium when it is absent; where it cannot be installed
the tests skip and say why. The slow tier also screenshots the report
(``pytest -m slow tests/test_browser.py``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "results" / "lenet5-digits" / "index.html"

# Runs in the page after "load" (data: URI images have decoded by then) and writes its verdict
# into an attribute that --dump-dom prints: per image, its natural width (0: broken); per h2
# section, how many content blocks (paragraph with text, table row, figure with an image) follow
# it before the next h2.
_PROBE = """<script>window.addEventListener("load", () => {
  const imgs = [...document.images].map(i => ({alt: i.alt.slice(0, 60), ok: i.complete && i.naturalWidth > 0}));
  const sections = [...document.querySelectorAll("h2")].map(h => {
    let n = 0;
    for (let e = h.nextElementSibling; e && e.tagName !== "H2"; e = e.nextElementSibling) {
      if ((e.tagName === "P" && e.textContent.trim()) || e.querySelector("tbody tr, img") || e.tagName === "NAV") n++;
    }
    return {title: h.textContent, blocks: n, id: h.id};
  });
  const links = [...document.querySelectorAll('a[href^="#"]')].map(a => ({href: a.getAttribute("href"),
      ok: !!document.getElementById(decodeURIComponent(a.getAttribute("href").slice(1)))}));
  document.body.setAttribute("data-psum-check", JSON.stringify({imgs, sections, links}));
});</script>"""


def chromium() -> str:
    """Path of a headless-capable Chromium; installs Debian's package as root when absent.

    Skips the calling test (with the reason) where none is found and none can be installed.
    """
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("PSUM_NO_BROWSER_INSTALL") or not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("no chromium on PATH and no way to install it here (needs root and apt-get: "
                    "apt-get install chromium, or run ./setup.sh pytest)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, text=True, env=env,
                       timeout=900)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
        r = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, text=True, env=env,
                           timeout=900)
    if r.returncode != 0 or not shutil.which("chromium"):
        pytest.skip(f"chromium could not be installed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    return shutil.which("chromium")


def _args(browser: str, tmp: Path) -> list[str]:
    # --no-sandbox: Chromium refuses to run as root otherwise (CI runs as root); a private profile
    # directory keeps runs apart.
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={tmp / 'profile'}"]


def check_in_browser(html_file: Path, tmp: Path) -> dict:
    """Load a copy of ``html_file`` with the probe in headless Chromium; return the probe's verdict
    (``imgs``: [{alt, ok}], ``sections``: [{title, blocks, id}], ``links``: [{href, ok}])."""
    browser = chromium()
    page = tmp / "probe.html"
    text = html_file.read_text()
    page.write_text(text.replace("</body>", _PROBE + "</body>") if "</body>" in text else text + _PROBE)
    r = subprocess.run(_args(browser, tmp) + ["--dump-dom", page.as_uri()], capture_output=True, text=True,
                       timeout=180)
    m = re.search(r'data-psum-check="([^"]*)"', r.stdout)
    assert m, f"the page's check did not run in Chromium (rc {r.returncode}): {r.stderr[-400:]}"
    import html

    return json.loads(html.unescape(m.group(1)))


def assert_report_reads(verdict: dict) -> None:
    """Every image decoded, every section has content, every contents link has its anchor."""
    broken = [i["alt"] for i in verdict["imgs"] if not i["ok"]]
    assert verdict["imgs"] and not broken, f"images that did not load: {broken}"
    empty = [s["title"] for s in verdict["sections"] if s["blocks"] == 0]
    assert verdict["sections"] and not empty, f"empty sections: {empty}"
    dangling = [a["href"] for a in verdict["links"] if not a["ok"]]
    assert not dangling, f"contents links without a target: {dangling}"


def test_committed_report_reads_in_chromium(tmp_path):
    if not COMMITTED.is_file():
        pytest.skip("no committed example report")
    assert_report_reads(check_in_browser(COMMITTED, tmp_path))


def test_broken_image_and_empty_section_are_caught(tmp_path):
    """The check itself: a page with a broken image and an empty section fails it."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><html><body><h2 id="a">A</h2><img alt="gone" src="data:image/png;base64,AAAA">'
                   '<h2 id="b">B</h2></body></html>')
    verdict = check_in_browser(bad, tmp_path)
    assert [i["ok"] for i in verdict["imgs"]] == [False]
    assert [s["blocks"] for s in verdict["sections"]] == [0, 0]
    with pytest.raises(AssertionError, match="images that did not load"):
        assert_report_reads(verdict)


@pytest.mark.slow
def test_report_screenshot(tmp_path):
    """Render the report from the committed data with the current renderer, check it in Chromium
    and screenshot the top of the page (kept in $PSUM_SCREENSHOT_DIR when set)."""
    from psum.reports.report import rerender

    data_file = COMMITTED.parent / "data.json"
    if not data_file.is_file():
        pytest.skip("no committed example report")
    out = tmp_path / "lenet5-digits"
    rerender(data_file, out)
    assert_report_reads(check_in_browser(out / "index.html", tmp_path))
    shot = Path(os.environ.get("PSUM_SCREENSHOT_DIR", tmp_path)) / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(_args(chromium(), tmp_path) + ["--window-size=1280,2400", f"--screenshot={shot}",
                                                  (out / "index.html").as_uri()], capture_output=True, timeout=180)
    assert shot.stat().st_size > 10_000
