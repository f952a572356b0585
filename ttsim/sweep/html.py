"""A sweep's answer as one self-contained HTML file: the summary and pruning, scatter plots
of the metric against L1 and against error with each Pareto front drawn, hover tooltips,
and a sortable ranking table. Everything (data, script, styles) is inline and the plots are
SVG drawn by the script below, so the file opens from disk with no server and no network.

When the script has drawn a plot it sets data-points (circles drawn) and data-front
(front points) on its <svg>, and <body data-plots-drawn> counts the plots drawn: a browser
test reads them back from the rendered DOM.
"""
from __future__ import annotations

import html
import json
import math

from . import FRONTS, RESULT_KEYS, _canon, _cell, error_of

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:20px 0 6px}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}
.plots{display:flex;flex-wrap:wrap;gap:16px} figure{margin:0}
figcaption{font-weight:600;margin-bottom:4px}
svg.plot{background:#fff;border:1px solid #ddd}
svg .pt{fill:#4a7bd0;fill-opacity:.55;stroke:#fff;stroke-width:.5;cursor:pointer}
svg .pt.front{fill:#d0342c;fill-opacity:.95;stroke:#000;stroke-width:1}
svg .pt.hi{stroke:#000;stroke-width:2.5}
svg .frontline{fill:none;stroke:#d0342c;stroke-width:1.5;stroke-dasharray:4 3}
svg .axis{stroke:#888} svg text{font-size:11px;fill:#444} svg .grid{stroke:#eee}
#tip{position:fixed;pointer-events:none;background:#222;color:#fff;padding:6px 8px;
     border-radius:4px;font-size:12px;white-space:pre;display:none;z-index:9}
table{border-collapse:collapse;font-size:12px;margin-top:8px}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f0f0f0;cursor:pointer;position:sticky;top:0}
th[data-dir=asc]::after{content:" \\25B2"} th[data-dir=desc]::after{content:" \\25BC"}
tr.front td{background:#fff3f0} tr.hi td{background:#ffe08a}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:4px}
"""

SCRIPT = r"""
(function () {
  const D = JSON.parse(document.getElementById("sweep-data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const tip = document.getElementById("tip");
  const fmt = v => v === null || v === undefined ? "" :
    typeof v === "number" ? (Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en-US") :
                             Number(v.toPrecision(5)).toString()) : String(v);
  const el = (name, attrs, parent) => {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  };
  const describe = r => D.params.map(p => p + " " + fmt(r[p])).join(", ") + "\n" +
    D.metric + " " + fmt(r[D.metric]) + D.figures.filter(f => f !== D.metric && r[f] !== undefined)
      .map(f => "\n" + f + " " + fmt(r[f])).join("");
  function ticks(lo, hi, n) {
    const step0 = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= step0);
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(t);
    return out;
  }
  function highlight(rank) {
    document.querySelectorAll(".hi").forEach(e => e.classList.remove("hi"));
    document.querySelectorAll('[data-rank="' + rank + '"]').forEach(e => e.classList.add("hi"));
    const row = document.querySelector('#ranking tr[data-rank="' + rank + '"]');
    if (row) row.scrollIntoView({block: "nearest"});
  }
  function plot(svg) {
    const key = svg.dataset.x, W = +svg.getAttribute("width"), H = +svg.getAttribute("height");
    const m = {l: 78, r: 14, t: 12, b: 42};
    const pts = D.rows.filter(r => typeof r[key] === "number" && typeof r[D.metric] === "number");
    if (!pts.length) {
      el("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, svg).textContent = "no " + key + " figures";
      svg.dataset.points = 0; svg.dataset.front = 0;
      return false;
    }
    const xs = pts.map(r => r[key]), ys = pts.map(r => r[D.metric]);
    const pad = (lo, hi) => lo === hi ? [lo - Math.abs(lo || 1) * 0.05, hi + Math.abs(hi || 1) * 0.05]
                                      : [lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05];
    const [x0, x1] = pad(Math.min(...xs), Math.max(...xs)), [y0, y1] = pad(Math.min(...ys), Math.max(...ys));
    const X = v => m.l + (v - x0) / (x1 - x0) * (W - m.l - m.r);
    const Y = v => H - m.b - (v - y0) / (y1 - y0) * (H - m.t - m.b);
    for (const t of ticks(x0, x1, 5)) {
      el("line", {x1: X(t), x2: X(t), y1: m.t, y2: H - m.b, class: "grid"}, svg);
      el("text", {x: X(t), y: H - m.b + 14, "text-anchor": "middle"}, svg).textContent = fmt(t);
    }
    for (const t of ticks(y0, y1, 5)) {
      el("line", {x1: m.l, x2: W - m.r, y1: Y(t), y2: Y(t), class: "grid"}, svg);
      el("text", {x: m.l - 4, y: Y(t) + 4, "text-anchor": "end"}, svg).textContent = fmt(t);
    }
    el("line", {x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: "axis"}, svg);
    el("line", {x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, class: "axis"}, svg);
    el("text", {x: (W + m.l) / 2, y: H - 6, "text-anchor": "middle"}, svg).textContent = svg.dataset.xlabel;
    el("text", {x: 12, y: (H - m.b) / 2, "text-anchor": "middle",
                transform: "rotate(-90 12 " + (H - m.b) / 2 + ")"}, svg).textContent = D.metric;
    const front = D.fronts[svg.dataset.front_name].map(rk => pts.find(r => r.rank === rk))
      .filter(Boolean).sort((a, b) => a[key] - b[key]);
    if (front.length > 1) {
      let d = "M" + X(front[0][key]) + "," + Y(front[0][D.metric]);
      for (const r of front.slice(1)) d += " H" + X(r[key]) + " V" + Y(r[D.metric]);
      el("path", {d: d, class: "frontline"}, svg);
    }
    const onFront = new Set(front.map(r => r.rank));
    let n = 0;
    for (const r of pts.slice().sort((a, b) => onFront.has(a.rank) - onFront.has(b.rank))) {
      const c = el("circle", {cx: X(r[key]), cy: Y(r[D.metric]), r: onFront.has(r.rank) ? 5.5 : 4,
                              class: "pt" + (onFront.has(r.rank) ? " front" : ""), "data-rank": r.rank}, svg);
      el("title", {}, c).textContent = "rank " + r.rank + "\n" + describe(r);
      c.addEventListener("mousemove", e => {
        tip.textContent = "rank " + r.rank + (onFront.has(r.rank) ? " (Pareto front)" : "") + "\n" + describe(r);
        tip.style.display = "block"; tip.style.left = (e.clientX + 14) + "px"; tip.style.top = (e.clientY + 10) + "px";
      });
      c.addEventListener("mouseleave", () => { tip.style.display = "none"; });
      c.addEventListener("click", () => highlight(r.rank));
      n++;
    }
    svg.dataset.points = n;
    svg.dataset.front = front.length;
    return true;
  }
  function table() {
    const t = document.getElementById("ranking"), head = t.tHead.rows[0], body = t.tBodies[0];
    const fronts = new Set(Object.values(D.fronts).flat());
    for (const c of D.columns) {
      const th = document.createElement("th");
      th.textContent = c; th.dataset.key = c;
      th.addEventListener("click", () => sort(c, th));
      head.appendChild(th);
    }
    function fill(rows) {
      body.replaceChildren();
      for (const r of rows) {
        const tr = body.insertRow();
        tr.dataset.rank = r.rank;
        if (fronts.has(r.rank)) tr.className = "front";
        for (const c of D.columns) tr.insertCell().textContent = fmt(r[c]);
        tr.addEventListener("click", () => highlight(r.rank));
      }
    }
    function sort(c, th) {
      const dir = th.dataset.dir === "asc" ? "desc" : "asc";
      head.querySelectorAll("th").forEach(h => delete h.dataset.dir);
      th.dataset.dir = dir;
      const s = dir === "asc" ? 1 : -1;
      fill(D.rows.slice().sort((a, b) => {
        const x = a[c], y = b[c];
        if (x === y) return a.rank - b.rank;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * s;
      }));
    }
    fill(D.rows);
    t.dataset.rows = D.rows.length;
  }
  table();
  let drawn = 0;
  document.querySelectorAll("svg.plot").forEach(svg => { if (plot(svg)) drawn++; });
  document.body.dataset.plotsDrawn = drawn;
})();
"""


def report_data(res):
    """What the page shows, as JSON-able data: ranked rows (flat records), their columns,
    the Pareto fronts as lists of ranks."""
    recs = [r for r in res.records() if r["rank"] is not None]
    params = list(res.sweep.space.params)
    figs = [k for k in RESULT_KEYS if any(k in r for r in recs)]
    if res.sweep.metric not in figs:
        figs.insert(0, res.sweep.metric)
    util = sorted({k for r in recs for k in r if k.startswith("utilisation.")})
    ranks = {id(r): i for i, r in enumerate(res.ranked, 1)}
    return {"metric": res.sweep.metric, "params": params, "figures": figs,
            "columns": ["rank", *params, *figs, *util, "pareto"],
            "rows": [{**{k: _canon(v) for k, v in rec.items()}, "error_measure": error_of(r["result"])}
                     for rec, r in zip(recs, res.ranked)],
            "fronts": {n: [ranks[id(r)] for r in rows] for n, rows in res.fronts.items()}}


def _finite(x):
    """NaN and infinities as null: JSON.parse refuses them, and a nan pcc must not blank the page."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def write_html(res, path):
    """Write the report of SweepResult `res` to `path`."""
    data = report_data(res)
    s = res.sweep
    title = f"ttsim sweep: {s.name}"
    plots = "".join(
        f'<figure><figcaption>{html.escape(s.metric)} against {html.escape(label)}</figcaption>'
        f'<svg class="plot" id="plot-{n}" width="560" height="380" data-x="{"l1_bytes" if n == "l1" else "error_measure"}" '
        f'data-front_name="{n}" data-xlabel="{html.escape(label)}"></svg></figure>'
        for n, (label, _) in FRONTS.items())
    failed = "".join(f"<li><code>{html.escape(str({k: _cell(v) for k, v in r['schedule'].items()}))}"
                     f"</code>: {html.escape(str(r['error']))}</li>" for r in res.failed)
    blob = json.dumps(_finite(data), default=str, allow_nan=False).replace("</", "<\\/")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>problem: <code>{html.escape(str(_canon(s.problem)))}</code></p>
<pre id="summary">{html.escape(res.summary())}</pre>
<h2>Pareto fronts</h2>
<p class="legend"><span><i style="background:#d0342c"></i>on the front (no schedule is better in both)</span>
<span><i style="background:#4a7bd0"></i>other schedules</span> hover a point for its schedule; click to find its row</p>
<div class="plots">{plots}</div>
<h2>Ranking ({len(res.ranked)} schedules; click a heading to sort)</h2>
<div style="overflow-x:auto"><table id="ranking"><thead><tr></tr></thead><tbody></tbody></table></div>
{f"<h2>Failed ({len(res.failed)})</h2><ul>{failed}</ul>" if failed else ""}
<div id="tip"></div>
<script type="application/json" id="sweep-data">{blob}</script>
<script>{SCRIPT}</script>
</body></html>
"""
    with open(path, "w") as f:
        f.write(page)
