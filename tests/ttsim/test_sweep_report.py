"""The sweep's HTML report: self-contained (no server, no network), and drawn by a real
headless browser (Chromium from the system's packages; .ci/run installs it): the rendered
ranking table holds the ranked schedules in order and every plot drew its points and its
Pareto front."""
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from ttsim.sweep import for_kernel

from .test_sweep import _kernel, log  # noqa: F401  (log is a fixture)

BROWSERS = ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome",
            "google-chrome-stable")


def _browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"no headless browser found ({', '.join(BROWSERS)} not on PATH): "
                f"apt-get install chromium, as .ci/run does")


def _chrome(browser, tmp_path, *args):
    p = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        f"--user-data-dir={tmp_path / 'profile'}", *args],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


class _Dom(HTMLParser):
    """The plots' <svg> attributes, <body>'s, and the ranking table's body rows as text."""

    def __init__(self):
        super().__init__()
        self.svgs, self.body, self.rows, self.head = {}, {}, [], []
        self._where = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg" and "plot" in (a.get("class") or ""):
            self.svgs[a["id"]] = a
        elif tag == "body":
            self.body = a
        elif tag == "table" and a.get("id") == "ranking":
            self._where = "table"
        elif self._where and tag == "tbody":
            self._where = "tbody"
        elif self._where == "tbody" and tag == "tr":
            self.rows.append([])
        elif self._where and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._where = None
        elif tag in ("td", "th") and self._cell is not None:
            (self.rows[-1] if tag == "td" else self.head).append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture
def report(tmp_path, log):
    res = for_kernel(str(_kernel(tmp_path)), cache=tmp_path / "c").run(jobs=1, progress=False)
    path = tmp_path / "report.html"
    res.to_html(path)
    return res, path


def test_report_is_self_contained(report):
    res, path = report
    page = path.read_text()
    # no file or address outside the page: no src/href, no URL but the SVG namespace
    assert not re.search(r"\b(src|href)\s*=", page)
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    data = json.loads(re.search(r'<script type="application/json" id="sweep-data">(.*?)</script>',
                                page, re.S).group(1))
    assert [r["rank"] for r in data["rows"]] == [1, 2, 3, 4]
    assert data["fronts"] == {"l1": [1], "error": [1, 2]}
    assert "RuntimeError: a=3 is broken" in page          # failures listed


def test_a_nan_figure_does_not_break_the_page(tmp_path, log):
    k = _kernel(tmp_path, body="def run(a):\n    return {'cycles': 10.0 * a, 'pcc': float('nan')}\n")
    from ttsim.sweep import Space, Sweep
    res = Sweep(f"{k}:run", Space({"a": [1, 2]}), {}, cache=tmp_path / "c").run(jobs=1, progress=False)
    res.to_html(tmp_path / "r.html")
    blob = re.search(r'id="sweep-data">(.*?)</script>', (tmp_path / "r.html").read_text(), re.S).group(1)
    assert [r["pcc"] for r in json.loads(blob)["rows"]] == [None, None]


def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = _browser()
    res, path = report
    dom = _Dom()
    dom.feed(_chrome(browser, tmp_path, "--dump-dom", path.as_uri()))
    assert dom.body.get("data-plots-drawn") == "2"
    assert set(dom.svgs) == {"plot-l1", "plot-error"}
    for name, svg in dom.svgs.items():
        assert svg.get("data-points") == "4", name             # every ranked schedule drawn
    assert dom.svgs["plot-l1"]["data-front"] == "1" and dom.svgs["plot-error"]["data-front"] == "2"
    # the ranking table the script rendered: ranked by cycles, with the schedule and figures
    assert dom.head[:4] == ["rank", "a", "b", "cycles"]
    assert [r[:4] for r in dom.rows] == [["1", "1", "2", "138"], ["2", "1", "1", "139"],
                                         ["3", "2", "2", "238"], ["4", "2", "1", "239"]]
    assert dom.rows[0][dom.head.index("l1_bytes")] == "1,000"
    assert dom.rows[0][-1] == "l1,error" and dom.rows[2][-1] == ""
    shot = tmp_path / "shot.png"
    _chrome(browser, tmp_path, f"--screenshot={shot}", "--window-size=1200,900", path.as_uri())
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
