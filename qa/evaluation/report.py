"""Formatting evaluation results: terminal tables and the self-contained HTML report.

The HTML report is one file with no external resources (no scripts, stylesheets or fonts
fetched from anywhere); its plots are inline SVG drawn here. Every piece of text that comes
from questions, documents or answers is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import EvalRun

COUNTS = [("questions", "questions"), ("answerable", "answerable"),
          ("unanswerable", "unanswerable")]
ROWS = [("hit@1", "document at rank 1"), ("hit@k", "document in top k"), ("mrr", "MRR"),
        ("ndcg@k", "nDCG@k"), ("answer_hit@k", "answer text in top k"),
        ("cited_holds_answer", "cited passage holds answer"),
        ("abstained_unanswerable", "unanswerable: abstained"),
        ("wrongly_abstained", "answerable: wrongly abstained"),
        ("latency_ms_p50", "latency p50 (ms)"), ("latency_ms_p95", "latency p95 (ms)")]
_LATENCY = {"latency_ms_p50", "latency_ms_p95"}
_LOWER_IS_BETTER = {"wrongly_abstained", "latency_ms_p50", "latency_ms_p95"}


# -- terminal ----------------------------------------------------------------------------


def _fmt(v: Any, key: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool) or isinstance(v, int) and key not in _LATENCY:
        return str(v)
    if isinstance(v, (int, float)):
        return f"{v:.1f}" if key in _LATENCY else f"{v:.3f}"
    return str(v)


def _label(label: str, k: Any) -> str:
    return label.replace("top k", f"top {k}").replace("@k", f"@{k}") if isinstance(k, int) \
        else label


def _groups(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"all": summary, **(summary.get("by_lang") or {}), **(summary.get("by_kind") or {})}


def _table(header: Sequence[str], body: list[list[str]]) -> list[str]:
    """Left-aligned first column, right-aligned others, widths fitted to the contents."""
    cols = list(zip(header, *body))
    widths = [max(len(c) for c in col) for col in cols]
    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = "".join("  " + c.rjust(w) for c, w in zip(cells[1:], widths[1:]))
        return (first + rest).rstrip()
    out = [line(header), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    out.extend(line(row) for row in body)
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """The metrics as an aligned table: column ``all`` and one per question language."""
    groups = _groups(summary)
    k = summary.get("k")
    body = [[label] + [_fmt(s.get(key), key) for s in groups.values()]
            for key, label in COUNTS if key in summary]
    body += [[_label(label, k)] + [_fmt(s.get(key), key) for s in groups.values()]
             for key, label in ROWS]
    return "\n".join(_table(["metric", *groups], body))


def _delta(key: str, a: Any, b: Any) -> tuple[str, str]:
    """The signed change from a to b, and whether it is better, worse or the same."""
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return "", ""
    d = b - a
    digits = 1 if key in _LATENCY else 3
    if round(d, digits) == 0:
        return f"{0:.{digits}f}", "="
    lower = key in _lower_is_better()
    better = (d < 0) if lower else (d > 0)
    return f"{d:+.{digits}f}", "^ better" if better else "v worse"


def _lower_is_better() -> set[str]:
    try:
        from . import LOWER_IS_BETTER
    except ImportError:  # pragma: no cover - the runner always defines it
        return _LOWER_IS_BETTER
    return set(LOWER_IS_BETTER)


def _state(s: dict[str, Any]) -> str:
    rank = s.get("doc_rank")
    return f"rank {rank if rank is not None else '-'}, " + (
        "abstained" if s.get("abstained") else "answered")


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def format_compare(diff: dict[str, Any], a: str, b: str) -> str:
    """Run A vs run B: each metric with its change, then the questions that changed."""
    lines = [f"A: {a}", f"B: {b}", ""]
    body = []
    for key, label in ROWS:
        m = diff["metrics"].get(key, {})
        change, verdict = _delta(key, m.get("a"), m.get("b"))
        body.append([label, _fmt(m.get("a"), key), _fmt(m.get("b"), key), change, verdict])
    lines += _table(["metric", "A", "B", "change", ""], body)
    better, worse = diff.get("better", []), diff.get("worse", [])
    lines.append("")
    lines.append(f"questions better in B: {len(better)}, worse in B: {len(worse)}")
    for tag, entries in (("better", better), ("worse", worse)):
        if not entries:
            continue
        lines.append(f"\n{tag} in B:")
        width = max(len(str(e["id"])) for e in entries)
        for e in entries:
            lines.append(f"  {str(e['id']).ljust(width)}  {_state(e['a'])} -> {_state(e['b'])}"
                         f"  {_short(e.get('question', ''), 70)}")
    for key, name in (("only_in_a", "A"), ("only_in_b", "B")):
        ids = diff.get(key) or []
        if ids:
            shown = ", ".join(str(i) for i in ids[:10]) + (" …" if len(ids) > 10 else "")
            lines.append(f"\nonly in {name} ({len(ids)}): {shown}")
    return "\n".join(lines)


# -- HTML: inline SVG plots ---------------------------------------------------------------

_PALETTE = ["#1f5fa8", "#d1495b", "#2a9d8f", "#e09f3e", "#6a4c93", "#8d6e63", "#3d5a80"]
_W, _H = 440, 240
_M = {"l": 44, "r": 12, "t": 30, "b": 36}
_E = html.escape


def _num(x: float) -> str:
    if x == int(x) and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.0f}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = (hi - lo) / (n - 1)
    return [lo + i * step for i in range(n)]


def _frame(title: str, xlabel: str, ylabel: str, xs: Sequence[float], x0: float, x1: float,
           ys: Sequence[float], y0: float, y1: float, inner: list[str],
           legend: list[tuple[str, str]]) -> str:
    """An SVG with axes, ticks, labels and legend around ``inner`` (already in pixels)."""
    pw, ph = _W - _M["l"] - _M["r"], _H - _M["t"] - _M["b"]
    def px(x: float) -> float:
        return _M["l"] + (x - x0) / ((x1 - x0) or 1) * pw
    def py(y: float) -> float:
        return _M["t"] + ph - (y - y0) / ((y1 - y0) or 1) * ph
    out = [f'<svg class="plot" viewBox="0 0 {_W} {_H}" role="img" aria-label="{_E(title)}">',
           f"<title>{_E(title)}</title>"]
    for y in ys:
        out.append(f'<line x1="{_M["l"]}" x2="{_W - _M["r"]}" y1="{py(y):.1f}" '
                   f'y2="{py(y):.1f}" class="grid"/>')
        out.append(f'<text x="{_M["l"] - 5}" y="{py(y) + 3.5:.1f}" text-anchor="end" '
                   f'class="tick">{_E(_num(y))}</text>')
    for x in xs:
        out.append(f'<text x="{px(x):.1f}" y="{_H - _M["b"] + 14}" text-anchor="middle" '
                   f'class="tick">{_E(_num(x))}</text>')
    out.extend(inner)
    base = _M["t"] + ph
    out.append(f'<line x1="{_M["l"]}" x2="{_W - _M["r"]}" y1="{base}" y2="{base}" '
               f'class="axis"/>')
    out.append(f'<text x="{_M["l"] + pw / 2:.1f}" y="{_H - 6}" text-anchor="middle" '
               f'class="lab">{_E(xlabel)}</text>')
    out.append(f'<text transform="translate(11 {_M["t"] + ph / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle" class="lab">{_E(ylabel)}</text>')
    x = _M["l"]
    for name, color in legend:
        out.append(f'<rect x="{x}" y="10" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 14}" y="19" class="leg">{_E(name)}</text>')
        x += 24 + 6.5 * len(name)
    out.append("</svg>")
    return "".join(out)


def _histogram(title: str, series: list[tuple[str, list[float], str]], lo: float, hi: float,
               xlabel: str, *, bins: int = 20,
               marks: Sequence[tuple[float, str]] = ()) -> str:
    """Side-by-side histogram bars of each series over [lo, hi], with vertical marker lines."""
    if not any(vals for _, vals, _ in series):
        return f'<p class="muted">{_E(title)}: no data.</p>'
    if hi <= lo:
        hi = lo + 1.0
    width = (hi - lo) / bins
    counts = []
    for _, vals, _ in series:
        c = [0] * bins
        for v in vals:
            c[min(bins - 1, max(0, int((v - lo) / width)))] += 1
        counts.append(c)
    top = max(max(c) for c in counts)
    ymax = max(1, top)
    ys = sorted({0, ymax} | ({round(ymax / 2)} if ymax >= 4 else set()))
    pw, ph = _W - _M["l"] - _M["r"], _H - _M["t"] - _M["b"]
    bw = pw / bins
    sub = bw * 0.86 / len(series)
    inner = []
    for s, ((name, _, color), c) in enumerate(zip(series, counts)):
        for i, n in enumerate(c):
            if not n:
                continue
            h = n / ymax * ph
            x = _M["l"] + i * bw + bw * 0.07 + s * sub
            a, b = lo + i * width, lo + (i + 1) * width
            inner.append(f'<rect x="{x:.1f}" y="{_M["t"] + ph - h:.1f}" width="{sub:.1f}" '
                         f'height="{h:.1f}" fill="{color}"><title>{_E(name)}: {n} in '
                         f'[{a:.3g}, {b:.3g})</title></rect>')
    for value, label in marks:
        if lo <= value <= hi:
            x = _M["l"] + (value - lo) / (hi - lo) * pw
            inner.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_M["t"] - 4}" '
                         f'y2="{_M["t"] + ph}" class="mark"/>')
            inner.append(f'<text x="{x + 3:.1f}" y="{_M["t"] + 6}" class="marklab">'
                         f'{_E(label)}</text>')
    legend = [(f"{name} ({len(vals)})", color) for name, vals, color in series]
    return _frame(title, xlabel, "questions", _ticks(lo, hi), lo, hi, ys, 0, ymax, inner,
                  legend)


def _hit_curve_plot(groups: dict[str, dict[str, Any]]) -> str:
    curves = []
    for i, (name, s) in enumerate(groups.items()):
        curve = s.get("hit_curve") or {}
        pts = sorted((int(j), v) for j, v in curve.items() if v is not None)
        if pts:
            curves.append((name, pts, "#333333" if name == "all" else
                           _PALETTE[(i - 1) % len(_PALETTE)]))
    if not curves:
        return '<p class="muted">hit@k curve: no answerable questions.</p>'
    kmax = max(j for _, pts, _ in curves for j, _ in pts)
    lowest = min(v for _, pts, _ in curves for _, v in pts)
    y0 = max(0.0, math.floor((lowest - 0.05) * 10) / 10)
    pw, ph = _W - _M["l"] - _M["r"], _H - _M["t"] - _M["b"]
    def px(j: int) -> float:
        return _M["l"] + 8 + (j - 1) / max(1, kmax - 1) * (pw - 16)
    def py(v: float) -> float:
        return _M["t"] + ph - (v - y0) / ((1.0 - y0) or 1) * ph
    inner = []
    for name, pts, color in curves:
        path = " ".join(f"{px(j):.1f},{py(v):.1f}" for j, v in pts)
        inner.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                     f'stroke-width="2"/>')
        for j, v in pts:
            inner.append(f'<circle cx="{px(j):.1f}" cy="{py(v):.1f}" r="3.2" fill="{color}">'
                         f'<title>{_E(name)}: hit@{j} = {v:.3f}</title></circle>')
    # x ticks are drawn by _frame with a linear scale; map ranks onto it
    ticks = []
    for j in range(1, kmax + 1):
        ticks.append(f'<text x="{px(j):.1f}" y="{_H - _M["b"] + 14}" text-anchor="middle" '
                     f'class="tick">{j}</text>')
    inner.extend(ticks)
    ys = _ticks(y0, 1.0, 5 if y0 <= 0.6 else 3)
    legend = [(name, color) for name, _, color in curves]
    return _frame("hit@j: answerable questions whose document is in the top j", "j (document rank)",
                  "hit rate", [], 0, 1, ys, y0, 1.0, inner, legend)


def _threshold(result: EvalRun, rows: list[dict[str, Any]]) -> float | None:
    """The abstention threshold: from the run info if given, else inferred from the rows.

    Answered questions have confidence >= threshold; the lowest answered confidence is the
    threshold's best estimate, shown only when some abstention lies below it (otherwise the
    rows say nothing about where the threshold is).
    """
    info = result.info or {}
    for src in (info, info.get("calibration") or {}):
        if isinstance(src, dict) and isinstance(src.get("threshold"), (int, float)):
            return float(src["threshold"])
    answered = [r["confidence"] for r in rows
                if not r.get("abstained") and isinstance(r.get("confidence"), (int, float))]
    abstained = [r["confidence"] for r in rows
                 if r.get("abstained") and isinstance(r.get("confidence"), (int, float))]
    if not answered or not abstained:
        return None
    t = min(answered)
    return t if any(c < t for c in abstained) else None


# -- HTML: sections -----------------------------------------------------------------------

_CSS = """
:root{--fg:#1d2330;--muted:#6b7280;--line:#e4e7ec;--bg:#fff;--soft:#f6f7f9;--bad:#b42318;
--ok:#067647;--accent:#1f5fa8}
*{box-sizing:border-box}
body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--fg);background:var(--bg);margin:0 auto;max-width:1100px;padding:24px 28px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:34px 0 10px;padding-bottom:4px;
border-bottom:1px solid var(--line)}h3{font-size:14px;margin:0 0 6px}
.muted{color:var(--muted)}code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,
monospace;font-size:12.5px}
.meta{display:flex;flex-wrap:wrap;gap:6px 22px;margin:8px 0 0;padding:0;list-style:none}
.meta b{font-weight:600}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:5px 12px;border-bottom:1px solid var(--line);text-align:right}
th:first-child,td:first-child{text-align:left}
thead th{font-weight:600;border-bottom:2px solid var(--line);background:var(--soft)}
td.bar{background:linear-gradient(90deg,#e6eef8 var(--v),transparent var(--v))}
tr.sep td{border-bottom:2px solid var(--line)}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:18px}
figure{margin:0;padding:10px 12px;border:1px solid var(--line);border-radius:8px}
figcaption{font-size:12.5px;color:var(--muted);margin-top:4px}
svg.plot{width:100%;height:auto;display:block}
svg .grid{stroke:#eef0f3}svg .axis{stroke:#9aa1ac}svg .tick{font-size:10px;fill:#6b7280}
svg .lab{font-size:11px;fill:#4b5563}svg .leg{font-size:11px;fill:#1d2330}
svg .mark{stroke:#111;stroke-dasharray:4 3}svg .marklab{font-size:10px;fill:#111}
.fail{border:1px solid var(--line);border-left:4px solid var(--bad);border-radius:6px;
padding:10px 14px;margin:12px 0}
.fail .q{font-size:15px;font-weight:600;margin:2px 0 6px}
.tag{display:inline-block;font-size:11.5px;padding:1px 8px;border-radius:10px;margin-right:4px;
background:#fdecea;color:var(--bad)}.tag.lang{background:var(--soft);color:var(--muted)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}
dt{color:var(--muted)}dd{margin:0}
ol.passages{margin:6px 0 0;padding-left:22px}ol.passages li{margin:4px 0}
ol.passages li.expected .doc{color:var(--ok);font-weight:600}
.doc{font-weight:600}.snip{color:#374151}
.answer{background:var(--soft);padding:6px 10px;border-radius:4px;white-space:pre-wrap}
details summary{cursor:pointer;color:var(--accent)}
.ok{color:var(--ok)}.bad{color:var(--bad)}
"""


def _metric_cell(key: str, v: Any) -> str:
    text = _E(_fmt(v, key))
    if isinstance(v, (int, float)) and key not in _LATENCY and 0 <= v <= 1:
        return f'<td class="bar" style="--v:{v * 100:.1f}%">{text}</td>'
    return f"<td>{text}</td>"


def _summary_table(summary: dict[str, Any]) -> str:
    groups = _groups(summary)
    k = summary.get("k")
    head = "".join(f"<th>{_E(str(g))}</th>" for g in groups)
    out = [f"<table><thead><tr><th>metric</th>{head}</tr></thead><tbody>"]
    for i, (key, label) in enumerate(COUNTS):
        cls = ' class="sep"' if i == len(COUNTS) - 1 else ""
        cells = "".join(f"<td>{_E(_fmt(s.get(key), key))}</td>" for s in groups.values())
        out.append(f"<tr{cls}><td>{_E(label)}</td>{cells}</tr>")
    for key, label in ROWS:
        cells = "".join(_metric_cell(key, s.get(key)) for s in groups.values())
        out.append(f"<tr><td>{_E(_label(label, k))}</td>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def failure_reasons(row: dict[str, Any]) -> list[str]:
    """Why a result row counts as a failure (empty: it does not)."""
    v = row.get("verdict") or {}
    if not v.get("answerable", row.get("expected_doc") is not None):
        return [] if v.get("abstained", row.get("abstained")) else ["unanswerable but answered"]
    reasons = []
    rank = v.get("doc_rank")
    if rank is None:
        reasons.append("document not retrieved")
    elif rank != 1:
        reasons.append(f"document at rank {rank}")
    if v.get("answer_hit_at_k") is False:
        reasons.append("answer text not retrieved")
    if v.get("abstained"):
        reasons.append("wrongly abstained")
    return reasons


def _snippet(text: str, n: int = 200) -> str:
    return _short(text, n)


def _failure(row: dict[str, Any], reasons: list[str]) -> str:
    expected = row.get("expected_doc")
    answers = row.get("expected_answers") or []
    tags = "".join(f'<span class="tag">{_E(r)}</span>' for r in reasons)
    if row.get("lang"):
        tags += f'<span class="tag lang">{_E(str(row["lang"]))}</span>'
    conf = row.get("confidence")
    facts = [
        ("expected document", f'<span class="mono">{_E(expected)}</span>' if expected
         else '<span class="muted">none (not answerable from the documents)</span>'),
        ("expected answers", "; ".join(f"“{_E(a)}”" for a in answers) if answers
         else '<span class="muted">-</span>'),
        ("confidence", _E(f"{conf:.3f}") if isinstance(conf, (int, float)) else "-"),
    ]
    dl = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    items = []
    for p in row.get("passages") or []:
        doc = str(p.get("doc_id", ""))
        text = str(p.get("text", ""))
        has = [a for a in answers if a and a in text]
        cls = ' class="expected"' if expected and doc == expected else ""
        badge = ' <span class="ok">✓ contains answer</span>' if has else ""
        score = p.get("score")
        score_s = f" · {score:.3f}" if isinstance(score, (int, float)) else ""
        items.append(f'<li{cls}><span class="doc mono">{_E(doc)}</span>'
                     f'<span class="muted">{_E(score_s)}</span>{badge}<br>'
                     f'<span class="snip">{_E(_snippet(text))}</span></li>')
    passages = (f'<ol class="passages">{"".join(items)}</ol>' if items
                else '<p class="muted">no passages retrieved</p>')
    state = "abstained" if row.get("abstained") else "answered"
    answer = str(row.get("answer", ""))
    return (f'<div class="fail" id="q-{_E(str(row.get("id", "")))}">'
            f'<div><span class="mono muted">{_E(str(row.get("id", "")))}</span> {tags}</div>'
            f'<div class="q">{_E(str(row.get("question", "")))}</div><dl>{dl}</dl>'
            f'<h3>retrieved instead</h3>{passages}'
            f'<h3 style="margin-top:8px">answer ({state})</h3>'
            f'<div class="answer">{_E(_short(answer, 800))}</div></div>')


def _all_questions(rows: list[dict[str, Any]]) -> str:
    head = ("<tr><th>id</th><th>lang</th><th>expected document</th><th>doc rank</th>"
            "<th>answer hit</th><th>abstained</th><th>confidence</th><th>ms</th></tr>")
    body = []
    for r in rows:
        v = r.get("verdict") or {}
        ok = not failure_reasons(r)
        hit = v.get("answer_hit_at_k")
        conf = r.get("confidence")
        cells = [
            f'<td class="mono {"ok" if ok else "bad"}">{_E(str(r.get("id", "")))}</td>',
            f"<td>{_E(str(r.get('lang') or ''))}</td>",
            f'<td class="mono">{_E(str(r.get("expected_doc") or "-"))}</td>',
            f"<td>{_E(str(v.get('doc_rank') if v.get('doc_rank') is not None else '-'))}</td>",
            f"<td>{'-' if hit is None else ('yes' if hit else 'no')}</td>",
            f"<td>{'yes' if r.get('abstained') else 'no'}</td>",
            f"<td>{_E(f'{conf:.3f}') if isinstance(conf, (int, float)) else '-'}</td>",
            f"<td>{_E(_fmt(r.get('latency_ms'), 'latency_ms_p50'))}</td>",
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def render_html(result: EvalRun, title: str = "") -> str:
    """One self-contained HTML page: run info, metrics, plots, and every failure in detail."""
    rows = list(result.rows)
    summary = result.summary
    info = result.info or {}
    groups = _groups(summary)

    meta = [("question file", title or "-"), ("model", info.get("embedder", "-")),
            ("documents", info.get("documents", "-")), ("passages", info.get("passages", "-")),
            ("k", summary.get("k", "-")), ("index", info.get("index_dir", "-")),
            ("index version", info.get("version", "-"))]
    meta_html = "".join(f"<li><b>{_E(name)}:</b> {_E(str(value))}</li>" for name, value in meta)

    conf = [(r, r["confidence"]) for r in rows if isinstance(r.get("confidence"), (int, float))]
    threshold = _threshold(result, rows)
    marks = [(threshold, f"threshold {threshold:.3f}")] if threshold is not None else []
    answered = [c for r, c in conf if not r.get("abstained")]
    abstained = [c for r, c in conf if r.get("abstained")]
    answerable = [c for r, c in conf if (r.get("verdict") or {}).get("answerable")]
    unanswerable = [c for r, c in conf if not (r.get("verdict") or {}).get("answerable")]
    lo, hi = 0.0, 1.0
    if conf:
        lo, hi = min(0.0, min(c for _, c in conf)), max(1.0, max(c for _, c in conf))
    latencies = [float(r["latency_ms"]) for r in rows
                 if isinstance(r.get("latency_ms"), (int, float))]
    lat_marks = [(float(summary[key]), name) for key, name in
                 (("latency_ms_p50", "p50"), ("latency_ms_p95", "p95"))
                 if isinstance(summary.get(key), (int, float))]
    plots = [
        (_histogram("confidence: answered vs abstained",
                    [("answered", answered, _PALETTE[0]), ("abstained", abstained, _PALETTE[1])],
                    lo, hi, "confidence", marks=marks),
         "Confidence of answered and abstained questions"
         + (" (dashed: abstention threshold)" if marks else "") + "."),
        (_histogram("confidence: answerable vs unanswerable",
                    [("answerable", answerable, _PALETTE[2]),
                     ("unanswerable", unanswerable, _PALETTE[3])],
                    lo, hi, "confidence", marks=marks),
         ("Confidence of questions the documents answer and of those they do not; a good "
          "threshold separates the two.")),
        (_hit_curve_plot(groups),
         ("Share of answerable questions whose document is among the first j distinct "
          "documents retrieved.")),
        (_histogram("latency", [("questions", latencies, _PALETTE[4])],
                    0.0, max(latencies, default=1.0), "latency (ms)", marks=lat_marks),
         "Time to answer each question (dashed: p50 and p95)."),
    ]
    plots_html = "".join(f"<figure>{svg}<figcaption>{_E(cap)}</figcaption></figure>"
                         for svg, cap in plots)

    failures = [(r, reasons) for r in rows if (reasons := failure_reasons(r))]
    counts: dict[str, int] = {}
    for _, reasons in failures:
        for reason in reasons:
            key = "document not at rank 1" if reason.startswith("document ") else reason
            counts[key] = counts.get(key, 0) + 1
    count_html = ", ".join(f"{_E(k)}: {n}" for k, n in counts.items())
    if failures:
        fail_html = (f'<p class="muted">{len(failures)} of {len(rows)} questions '
                     f"({count_html}).</p>" + "".join(_failure(r, rs) for r, rs in failures))
    else:
        fail_html = '<p class="ok">No failures: every question was handled correctly.</p>'

    heading = "QA evaluation" + (f" — {title}" if title else "")
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_E(heading)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_E(heading)}</h1><ul class=\"meta\">{meta_html}</ul></header>"
        f"<h2>Summary</h2>{_summary_table(summary)}"
        f'<h2>Plots</h2><div class="plots">{plots_html}</div>'
        f"<h2>Failures</h2>{fail_html}"
        f"<h2>All questions</h2><details><summary>{len(rows)} questions</summary>"
        f"{_all_questions(rows)}</details>"
        "</body></html>\n"
    )
