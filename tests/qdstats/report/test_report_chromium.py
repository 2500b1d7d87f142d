"""Render the HTML report in headless Chromium (Debian package `chromium`) and check that it loads and that
every image decodes. The page's inline script writes ``data-images-ok`` / ``data-images-total`` on <body>
after the load event; ``--dump-dom`` returns the DOM at that point. A corrupted image (negative control)
must be reported as not decoded, so the check can fail.

Skipped, with the reason printed, when no chromium binary is installed (CI: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from qdstats.report import build_report

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
_SKIP = "chromium not installed (Debian: apt-get install -y chromium); headless rendering test skipped"
if CHROMIUM is None:
    print(_SKIP)

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--virtual-time-budget=10000"]


def _chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=120, check=False)


def _body_attrs(html_path: Path) -> dict[str, str]:
    res = _chromium("--dump-dom", html_path.resolve().as_uri())
    m = re.search(r"<body([^>]*)>", res.stdout)
    assert m, f"chromium returned no DOM (rc={res.returncode}): {res.stderr[-2000:]}"
    return dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(1)))


@pytest.fixture(scope="module")
def report(small_records, tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip(_SKIP)
    out = tmp_path_factory.mktemp("chromium")
    return build_report(small_records, out_dir=out, title="SYNTHETIC report (chromium)", n_resamples=99,
                        strict=True)


def test_report_loads_and_every_image_decodes(report):
    attrs = _body_attrs(report.html)
    assert attrs.get("data-qd-report") == "1"
    # forest, DiD forest (one model), sensitivity heatmap, alignment scatter, tokenizer premiums
    assert attrs.get("data-images-total") == str(len(report.figures)) == "5"
    assert attrs.get("data-images-ok") == "5"


def test_corrupted_image_is_detected(report, tmp_path):
    """Negative control: break one image's base64 payload; chromium must count it as not decoded."""
    html = report.html.read_text(encoding="utf-8")
    broken = re.sub(r'(src="data:image/png;base64,)[A-Za-z0-9+/]{200}', r"\1" + "A" * 200, html, count=1)
    assert broken != html
    path = tmp_path / "broken.html"
    path.write_text(broken, encoding="utf-8")
    attrs = _body_attrs(path)
    assert attrs.get("data-images-total") == "5" and attrs.get("data-images-ok") == "4"


def test_screenshot_is_rendered(report, tmp_path):
    shot = tmp_path / "shot.png"
    res = _chromium(f"--screenshot={shot}", "--window-size=1200,2400", report.html.resolve().as_uri())
    assert shot.exists(), res.stderr[-2000:]
    from matplotlib import image

    px = image.imread(shot)
    assert px.shape[0] == 2400 and px.shape[1] == 1200
    assert px[..., :3].std() > 0.05  # not a blank page
