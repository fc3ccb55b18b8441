"""An answer with its sources as text to paste elsewhere: plain text or Markdown.

Both keep the answer's ``[n]`` markers and list the cited passages under them: document, where
in it (character offsets), and the quoted sentences.
"""

from __future__ import annotations

from typing import Any

from ..errors import one_line as _one_line


def _sources(res: dict[str, Any]) -> list[tuple[int, str, str, list[str]]]:
    """(marker, document, where, quoted sentences) for each cited passage, in marker order."""
    by_rank = {int(p["rank"]): p for p in res.get("passages") or []}
    quotes: dict[int, list[str]] = {}
    for c in res.get("citations") or []:
        quotes.setdefault(int(c["marker"]), []).append(_one_line(c["text"]))
    out = []
    for m in sorted(quotes):
        p = by_rank.get(m)
        if p is None:
            continue
        title, doc = str(p.get("title") or ""), str(p["doc_id"])
        name = doc if title in ("", doc) else f"{title} ({doc})"
        out.append((m, name, f"characters {int(p['start'])}-{int(p['end'])}", quotes[m]))
    return out


def _sentences(res: dict[str, Any]) -> list[tuple[str, str]]:
    """The answer as (sentence, markers such as "[1][3]") pairs."""
    if res.get("abstained"):
        return [(_one_line(res.get("answer") or "Not found in the documents."), "")]
    sentences = res.get("sentences") or []
    if not sentences:
        return [(_one_line(res.get("answer", "")), "")]
    return [(_one_line(s["text"]), "".join(f"[{int(m)}]" for m in s.get("markers") or []))
            for s in sentences]


def _joined(pairs: list[tuple[str, str]]) -> str:
    return " ".join(f"{text} {markers}".strip() for text, markers in pairs)


def as_plain_text(question: str, res: dict[str, Any]) -> str:
    """Question, answer with ``[n]`` markers, then ``Sources:`` one per marker."""
    lines = [f"Q: {_one_line(question)}", f"A: {_joined(_sentences(res))}"]
    sources = _sources(res)
    if sources:
        lines += ["", "Sources:"]
        for m, name, where, quotes in sources:
            lines.append(f"[{m}] {name}, {where}")
            lines += [f'    "{q}"' for q in quotes]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    """Text that Markdown shows as written (no emphasis, links or HTML)."""
    return "".join("\\" + ch if ch in "\\`*_{}[]<>()#+!|~" else ch for ch in text)


def as_markdown(question: str, res: dict[str, Any]) -> str:
    """The same as Markdown: the question in bold, the answer with its ``[n]`` markers, and a
    numbered source list with the quotes as block quotes."""
    pairs = [(_md_escape(text), markers) for text, markers in _sentences(res)]
    lines = [f"**{_md_escape(_one_line(question))}**", "", _joined(pairs)]
    sources = _sources(res)
    if sources:
        lines += ["", "Sources:", ""]
        for m, name, where, quotes in sources:
            lines.append(f"{m}. {_md_escape(name)}, {where}")
            lines += [f"   > {_md_escape(q)}" for q in quotes]
    return "\n".join(lines) + "\n"
