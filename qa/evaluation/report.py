"""Formatting evaluation results: terminal tables and the self-contained HTML report.

The HTML report is one file with no external resources (no scripts, stylesheets or fonts
fetched from anywhere); its charts are inline SVG drawn by matplotlib (:mod:`.plots`). Every
piece of text that comes from questions, documents or answers is escaped with
:func:`html.escape`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import one_line
from .plots import PALETTE, histogram, hit_curve

if TYPE_CHECKING:
    from . import EvalRun

COUNTS = [("questions", "questions"), ("answerable", "answerable"),
          ("unanswerable", "unanswerable")]
ROWS = [("hit@1", "document at rank 1"), ("hit@k", "document in top k"), ("mrr", "MRR"),
        ("ndcg@k", "nDCG@k"), ("answer_hit@k", "answer text in top k"),
        ("cited_holds_answer", "cited passage holds answer"),
        ("cited_sentence_holds_answer", "cited sentence holds answer"),
        ("abstained_unanswerable", "unanswerable: abstained"),
        ("wrongly_abstained", "answerable: wrongly abstained"),
        ("latency_ms_p50", "latency p50 (ms)"), ("latency_ms_p95", "latency p95 (ms)")]
# Shown only for runs whose answers a language model wrote (qa eval --llm-url).
GENERATED_ROWS = [("generated_share", "answered by the model"),
                  ("fallback_rate", "model answer replaced (fallback)"),
                  ("supported_share", "generated sentences supported"),
                  ("citation_precision", "citation precision"),
                  ("citation_recall", "citation recall"),
                  ("language_match", "answer in the question's language")]
_LATENCY = {"latency_ms_p50", "latency_ms_p95"}
_LOWER_IS_BETTER = {"wrongly_abstained", "latency_ms_p50", "latency_ms_p95", "fallback_rate"}


def _rows(*summaries: dict[str, Any]) -> list[tuple[str, str]]:
    """Today's metric rows, plus the generated-answer ones when a summary holds them."""
    generated = any(s.get("supported_share") is not None or s.get("generated_share") is not None
                    for s in summaries)
    return ROWS + (GENERATED_ROWS if generated else [])
_E = html.escape


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
             for key, label in _rows(summary)]
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


def format_compare(diff: dict[str, Any], a: str, b: str) -> str:
    """Run A vs run B: each metric with its change, then the questions that changed."""
    lines = [f"A: {a}", f"B: {b}", ""]
    body = []
    rows = _rows({k: m.get("a") for k, m in diff["metrics"].items()},
                 {k: m.get("b") for k, m in diff["metrics"].items()})
    for key, label in rows:
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
                         f"  {one_line(e.get('question', ''), 70)}")
    for key, name in (("only_in_a", "A"), ("only_in_b", "B")):
        ids = diff.get(key) or []
        if ids:
            shown = ", ".join(str(i) for i in ids[:10]) + (" …" if len(ids) > 10 else "")
            lines.append(f"\nonly in {name} ({len(ids)}): {shown}")
    return "\n".join(lines)


# -- HTML -------------------------------------------------------------------------------

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
svg.plot text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
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
    for key, label in _rows(summary):
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
    return one_line(text, n)


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
            f'<div class="answer">{_E(one_line(answer, 800))}</div></div>')


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
        (histogram("confidence: answered vs abstained",
                   [("answered", answered, PALETTE[0]), ("abstained", abstained, PALETTE[1])],
                   lo, hi, "confidence", marks=marks, gid="answered"),
         "Confidence of answered and abstained questions"
         + (" (dashed: abstention threshold)" if marks else "") + "."),
        (histogram("confidence: answerable vs unanswerable",
                   [("answerable", answerable, PALETTE[2]),
                    ("unanswerable", unanswerable, PALETTE[3])],
                   lo, hi, "confidence", marks=marks, gid="answerable"),
         ("Confidence of questions the documents answer and of those they do not; a good "
          "threshold separates the two.")),
        (hit_curve(groups),
         ("Share of answerable questions whose document is among the first j distinct "
          "documents retrieved.")),
        (histogram("latency", [("questions", latencies, PALETTE[4])],
                   0.0, max(latencies, default=1.0), "latency (ms)", marks=lat_marks,
                   gid="latency"),
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
