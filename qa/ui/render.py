"""The chat's HTML, from Jinja2 templates (``qa/ui/templates``) with autoescape on.

Every value from documents, file names and questions reaches the page through a template, so it
is escaped; the only markup passed through unescaped is what :mod:`qa.ui.marked_text` produced
(escaped text or sanitised Markdown with ``<mark>``). The functions here turn the chat's data
(answer dicts, index info, the conversation store) into view data and render one template each.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from ..answer import NOT_FOUND
from ..documents import SUPPORTED_SUFFIXES
from ..errors import one_line
from ..uploads import MAX_UPLOAD_BYTES
from .actions import plural
from .copy_text import as_markdown, as_plain_text
from .marked_text import is_markdown, marked_html, plain_inline

TITLE = "Ask your documents"
TAGLINE = ("Ask in English or German. Every sentence of the answer is quoted from your documents "
           "and marked with the passage it comes from.")
MAX_LISTED_DOCUMENTS = 200
TIP_CONTEXT = 90  # characters of the passage shown on each side of a cited sentence


@lru_cache(maxsize=1)
def environment() -> Any:
    """The Jinja2 environment over the package's templates, autoescaping everything."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("qa.ui", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["plural"] = plural
    env.filters["short"] = short
    return env


def _render(template: str, **data: Any) -> str:
    return str(environment().get_template(template).render(**data))


def short(text: Any, n: int = 70) -> str:
    """``text`` on one line, cut to ``n`` characters with an ellipsis."""
    return one_line(text, n)


# -- answers --------------------------------------------------------------------------------------

def _context(p: dict[str, Any], start: int, end: int) -> tuple[str, str, str]:
    """The cited span of a passage with a little text on each side (cut at word boundaries)."""
    text, base = str(p["text"]), int(p["start"])
    s, e = max(start - base, 0), min(end - base, len(text))
    before, after = text[max(s - TIP_CONTEXT, 0):s], text[e:e + TIP_CONTEXT]
    if s > TIP_CONTEXT and " " in before:
        before = "…" + before.split(" ", 1)[1]
    if e + TIP_CONTEXT < len(text) and " " in after:
        after = after.rsplit(" ", 1)[0] + "…"
    return " ".join(before.split()) + " ", " ".join(text[s:e].split()), " " + " ".join(
        after.split())


def _sentences(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer's sentences with their markers; from ``citations`` for older payloads."""
    if res.get("sentences"):
        return [{"text": " ".join(str(s["text"]).split()), "markers": list(s.get("markers") or []),
                 "supported": s.get("supported", True)} for s in res["sentences"]]
    if res.get("citations"):
        return [{"text": " ".join(str(c["text"]).split()), "markers": [c["marker"]],
                 "supported": True} for c in res["citations"]]
    return [{"text": str(res.get("answer", "")), "markers": [], "supported": True}]


def _answer_view(turn: int, q: str, res: dict[str, Any]) -> dict[str, Any]:
    passages = res.get("passages") or []
    by_rank = {int(p["rank"]): p for p in passages}
    cits = res.get("citations") or []
    sentences = []
    for i, s in enumerate(_sentences(res)):
        markers = []
        for j, m in enumerate(int(m) for m in s["markers"]):
            p = by_rank.get(m)
            # the citation quoted by this sentence, else the first one of that passage
            c = next((c for c in cits if int(c["marker"]) == m
                      and " ".join(str(c["text"]).split()) == s["text"]),
                     next((c for c in cits if int(c["marker"]) == m), None))
            tip = None
            if p is not None:
                span = (int(c["start"]), int(c["end"])) if c else (
                    tuple(p["highlights"][0]) if p.get("highlights") else
                    (int(p["start"]), int(p["start"])))
                context = _context(p, *span)
                if is_markdown(p["doc_id"]):
                    context = (plain_inline(context[0]), plain_inline(context[1]),
                               plain_inline(context[2]))
                tip = {"doc": p.get("title") or p["doc_id"], "doc_id": p["doc_id"],
                       "context": context}
            markers.append({"n": m, "tip_id": f"tip-{turn}-{i}-{j}", "tip": tip})
        first = by_rank.get(int(s["markers"][0])) if s["markers"] else None
        text = plain_inline(s["text"]) if first and is_markdown(first["doc_id"]) else s["text"]
        sentences.append({**s, "text": text, "markers": markers})
    cited_ranks = sorted({m["n"] for s in sentences for m in s["markers"]})
    feedback = {
        "question": q, "answer": res.get("answer", ""), "abstained": bool(res.get("abstained")),
        "cited": [{"doc_id": c["doc_id"], "start": c["start"], "end": c["end"],
                   "text": c["text"]} for c in cits],
        "passages": [{"rank": p["rank"], "doc_id": p["doc_id"], "start": p["start"],
                      "end": p["end"], "text": p["text"]} for p in passages],
    }
    conf = res.get("confidence")
    return {
        "turn": turn, "abstained": bool(res.get("abstained")), "sentences": sentences,
        "answer": res.get("answer", ""), "not_found": NOT_FOUND, "n_passages": len(passages),
        "chips": [{"n": m, "doc_id": by_rank[m]["doc_id"]} for m in cited_ranks if m in by_rank],
        "confidence": None if conf is None else f"{float(conf):.0%}",
        "notice": res.get("notice"), "mode": res.get("mode") or "extractive",
        "model": res.get("model"),
        "rewritten": res.get("rewritten_question")
        if res.get("rewritten_question") not in (None, res.get("question")) else None,
        "copy_text": as_plain_text(q, res), "copy_markdown": as_markdown(q, res),
        "feedback": json.dumps(feedback, ensure_ascii=False),
        "choices": [{"rank": p["rank"], "label": f"[{p['rank']}] {p['doc_id']}: "
                     f"{short(p['text'], 80)}"} for p in passages],
    }


def render_answer(turn: int, res: dict[str, Any], question: str = "",
                  read_with: Sequence[str] = ()) -> str:
    """One answer (or abstention) with markers, previews, copy and feedback controls;
    ``read_with``: the earlier questions a follow-up was read with."""
    return _render("answer.html", a={**_answer_view(turn, question, res),
                                     "read_with": [str(x) for x in read_with]})


def render_conversation(turns: Sequence[dict[str, Any]]) -> str:
    """The conversation: a welcome when empty, else each question and its answer."""
    views = []
    for i, t in enumerate(turns, start=1):
        # (the store comes back from the browser: anything but a list of questions is dropped)
        read_with = t["read_with"] if isinstance(t.get("read_with"), list) else []
        answer = Markup(render_answer(i, t["result"], str(t["q"]), read_with)) \
            if t.get("result") else None
        views.append({"n": i, "q": t["q"], "pending": bool(t.get("pending")),
                      "error": t.get("error"), "notice": t.get("notice"), "answer": answer,
                      # a model's answer while it streams in (qa.generation)
                      "partial": t.get("partial"), "model": t.get("model"),
                      "rewrite": t.get("rewrite")})
    return _render("conversation.html", turns=views, latest=len(views))


# -- sources --------------------------------------------------------------------------------------

def _passage_view(p: dict[str, Any], turn: int, related: bool) -> dict[str, Any]:
    highlights = [] if related else [list(h) for h in p.get("highlights") or []]
    where = []
    if p.get("passages_in_doc"):
        where.append(f"passage {int(p['chunk_id']) + 1} of {int(p['passages_in_doc'])}")
    where.append(f"characters {int(p['start']):,}–{int(p['end']):,}")
    title, doc_id = str(p.get("title") or ""), str(p["doc_id"])
    return {
        "rank": int(p["rank"]), "id": f"{'rel' if related else 'src'}-{turn}-{int(p['rank'])}",
        "cited": bool(highlights), "related": related, "doc_id": doc_id,
        "title": title if title and title != doc_id else None,
        "where": " · ".join(where), "score": f"{float(p['score']):.3f}",
        "markdown": is_markdown(doc_id),
        "html": Markup(marked_html(str(p["text"]), int(p["start"]), highlights,
                                   markdown=is_markdown(doc_id))),
        # with each span its text, so that the viewer can tell when the document has changed
        "highlights": json.dumps([[s, e, str(p["text"])[s - int(p["start"]): e - int(p["start"])]]
                                  for s, e in highlights]),
    }


def _turn_sources(turn: int, t: dict[str, Any]) -> dict[str, Any]:
    res = t["result"]
    related = bool(res.get("abstained"))
    passages = [_passage_view(p, turn, related) for p in res.get("passages") or []]
    return {"turn": turn, "q": t["q"], "related": related, "passages": passages,
            "n_cited": sum(p["cited"] for p in passages)}


def render_sources(turns: Sequence[dict[str, Any]]) -> str:
    """The sources panel: the latest answer's passages, earlier ones folded below. Every turn
    the conversation keeps has its passages here: a marker of an early answer must not lead to
    nothing, or to another answer's passage with the same number. (The conversation keeps
    ``conversations.MAX_TURNS`` turns.)"""
    done = [(i + 1, t) for i, t in enumerate(turns) if t.get("result")]
    latest = _turn_sources(*done[-1]) if done else None
    earlier = [_turn_sources(n, t) for n, t in reversed(done[:-1])]
    return _render("sources.html", latest=latest, earlier=earlier,
                   pending=any(t.get("pending") for t in turns))


# -- index, uploads, viewer, conversation list ----------------------------------------------------

def render_stats(info: dict[str, Any]) -> str:
    """The header with the index's size and model."""
    return _render("header.html", title=TITLE, tagline=TAGLINE, info=info)


def render_index(info: dict[str, Any], documents: Sequence[dict[str, Any]],
                 message: str | None = None) -> str:
    """The index panel: counts, and the documents (each opens in the viewer, or is deleted)."""
    docs = [{"doc_id": str(d["doc_id"]), "title": str(d.get("title") or ""),
             "passages": int(d["passages"]), "chars": int(d["chars"])}
            for d in list(documents)[:MAX_LISTED_DOCUMENTS]]
    return _render("index_panel.html", info=info, docs=docs, message=message,
                   more=max(len(documents) - MAX_LISTED_DOCUMENTS, 0))


def render_upload_status(rep: dict[str, Any] | None, error: str | None = None) -> str:
    """What the last upload did (or the upload rules, before any)."""
    kind = "idle"
    if error:
        kind = "bad"
    elif rep is not None:
        bad = bool(rep["skipped"])
        good = bool(rep["added"] or rep["updated"] or rep["unchanged"])
        kind = "warn" if bad and good else "bad" if bad else "ok"
    types = ", ".join(s for s in SUPPORTED_SUFFIXES if s != ".markdown")
    return _render("upload_status.html", kind=kind, error=error, types=types,
                   limit_mb=MAX_UPLOAD_BYTES // 2**20,
                   lines=rep["message"].split("\n") if rep else [])


def render_document(doc: dict[str, Any]) -> str:
    """The document viewer's content: the whole text, cited spans marked."""
    body = marked_html(doc["text"], 0, doc["highlights"], markdown=is_markdown(doc["doc_id"]))
    return _render("viewer.html", doc=doc, body=Markup(body), n_marks=len(doc["highlights"]),
                   moved=doc.get("moved", 0), gone=doc.get("gone", 0))


def conversation_markdown(turns: Sequence[dict[str, Any]]) -> str:
    """A conversation's answered turns as one Markdown text (what *Save* downloads)."""
    return "\n---\n\n".join(as_markdown(str(t["q"]), t["result"])
                             for t in turns if t.get("result"))


def render_history(store: dict[str, Any]) -> str:
    """The list of earlier conversations, newest first, the new-conversation button, and a link
    that saves the open conversation as Markdown (made in the page: nothing goes to a server)."""
    convs = [{"id": c["id"], "title": c["title"] or "(untitled)", "n": len(c["turns"]),
              "current": c["id"] == store.get("current")}
             for c in store.get("conversations") or []]
    current = next((c for c in store.get("conversations") or []
                    if c["id"] == store.get("current")), None)
    text = conversation_markdown(current["turns"]) if current else ""
    href = "data:text/markdown;charset=utf-8," + quote(text) if text else None
    return _render("history.html", conversations=convs, save_href=href)
