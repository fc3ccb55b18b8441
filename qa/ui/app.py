"""The web chat: ask in English or German, read the answer with its ``[n]`` markers, and check
each claim against the highlighted sentence of the cited passage.

The UI only calls the Retriever's public methods (``ask``, ``info``, ``documents``, ``add``). All
text from documents, file names and questions is HTML-escaped before it is put into HTML.

Gradio API (``gradio_client``): ``/ask`` (question, k) -> answer dict, ``/search`` (question, k)
-> passages, ``/info`` () -> index summary, ``/upload`` (files) -> update report.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from ..answer import NOT_FOUND
from ..documents import SUPPORTED_SUFFIXES
from ..errors import QAError, one_line
from ..limits import DEFAULT_K, MAX_QUESTION_CHARS, check_k
from ..uploads import MAX_UPLOAD_BYTES, Received, add_uploads
from .gradio_errors import one_line_blocks

MAX_UI_K = 20
MAX_EARLIER_TURNS = 10
MAX_LISTED_DOCUMENTS = 200

EXAMPLES = [
    "What did Ukraine offer in Istanbul?",
    "Wer sollte die Gespräche über eine Deeskalation vermitteln?",
    "Why did Russia say it was withdrawing from Kyiv?",
    "Was ist die stille Übereinkunft von 2023?",
]

TITLE = "Ask your documents"
TAGLINE = ("Ask in English or German. Every sentence of the answer is quoted from your documents "
           "and marked with the passage it comes from.")


def esc(value: Any) -> str:
    """HTML-escape anything (quotes too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


# -- payloads (what the API returns and the HTML is rendered from) -------------------------------

def passage_payload(p: Any, doc_passages: dict[str, int]) -> dict[str, Any]:
    """``Passage.to_json()`` plus how many passages its document has (for the chat's cards)."""
    d: dict[str, Any] = p.to_json()
    d["passages_in_doc"] = doc_passages.get(p.doc_id)
    return d


def answer_payload(answer: Any, doc_passages: dict[str, int]) -> dict[str, Any]:
    """``Answer.to_json()`` with the chat's per-passage extras."""
    d: dict[str, Any] = answer.to_json()
    d["passages"] = [passage_payload(p, doc_passages) for p in answer.passages]
    return d


class Core:
    """The operations behind the chat and its API, on one Retriever."""

    def __init__(self, retriever: Any) -> None:
        self.r = retriever

    def _doc_passages(self) -> dict[str, int]:
        return {d["doc_id"]: d["passages"] for d in self.r.documents()}

    def ask(self, question: str, k: int = DEFAULT_K) -> dict[str, Any]:
        answer = self.r.ask(question, check_k(k))
        return answer_payload(answer, self._doc_passages())

    def search(self, question: str, k: int = DEFAULT_K) -> dict[str, Any]:
        passages = self.r.search(question, check_k(k))
        docs = self._doc_passages()
        return {"question": question, "passages": [passage_payload(p, docs) for p in passages]}

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.r.info())
        out["document_list"] = self.r.documents()
        return out

    def upload(self, paths: Sequence[Any] | None,
               progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Add uploaded files to the index (see :func:`qa.uploads.add_uploads`): unsupported,
        too large or unreadable files are named in ``skipped`` and change nothing."""
        received = [Received(Path(_path_of(p)).name, _path_of(p)) for p in (paths or []) if p]
        out = add_uploads(self.r, received, progress=progress).to_json()
        out["message"] = upload_message(out)
        return out


def _path_of(item: Any) -> str:
    """A file path from what Gradio passes: a path, or a FileData-like dict or object."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if isinstance(item, dict):
        return str(item.get("path") or "")
    return str(getattr(item, "path", "") or "")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' * (n != 1)}"


def _names(items: Sequence[str]) -> str:
    return ", ".join(items)


def upload_message(rep: dict[str, Any]) -> str:
    """One plain-text line per outcome (escaped when shown in HTML)."""
    lines = []
    if rep["added"]:
        n = len(rep["added"])
        lines.append(f"Added {n} document{'s' * (n != 1)}: {_names(rep['added'])}.")
    if rep["updated"]:
        lines.append(f"Updated: {_names(rep['updated'])}.")
    if rep["unchanged"]:
        lines.append(f"Already in the index, unchanged: {_names(rep['unchanged'])}.")
    for s in rep["skipped"]:
        lines.append(f"Could not add {s['file']}: {s['reason']}.")
    if rep["skipped"] and not (rep["added"] or rep["updated"]):
        lines.append("Nothing already in the index was changed.")
    if not lines:
        lines.append("No files received.")
    lines.append(f"The index holds {_plural(rep['documents'], 'document')}, "
                 f"{_plural(rep['passages'], 'passage')}.")
    return "\n".join(lines)


# -- HTML rendering -------------------------------------------------------------------------------

def _marked(text: str, start: int, highlights: Sequence[Sequence[int]]) -> str:
    """Passage text, escaped, with the highlighted document spans wrapped in <mark>."""
    spans = sorted((max(s - start, 0), min(e - start, len(text))) for s, e in highlights)
    merged: list[list[int]] = []
    for s, e in spans:
        if e <= s:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out, pos = [], 0
    for s, e in merged:
        out.append(esc(text[pos:s]))
        out.append(f"<mark>{esc(text[s:e])}</mark>")
        pos = e
    out.append(esc(text[pos:]))
    return "".join(out)


def _where(p: dict[str, Any]) -> str:
    parts = []
    if p.get("passages_in_doc"):
        parts.append(f"passage {int(p['chunk_id']) + 1} of {int(p['passages_in_doc'])}")
    parts.append(f"characters {int(p['start']):,}–{int(p['end']):,}")
    return " · ".join(parts)


def _doc_label(p: dict[str, Any]) -> str:
    title, doc_id = str(p.get("title") or ""), str(p["doc_id"])
    if title and title != doc_id:
        return (f'<span class="qa-src-title">{esc(title)}</span>'
                f'<span class="qa-src-doc">{esc(doc_id)}</span>')
    return f'<span class="qa-src-title">{esc(doc_id)}</span>'


def render_passage(p: dict[str, Any], turn: int, *, related: bool = False) -> str:
    rank = int(p["rank"])
    cited = bool(p.get("highlights")) and not related
    prefix = "rel" if related else "src"
    classes = ["qa-src", "is-cited" if cited else "is-retrieved"] + (["is-related"] if related
                                                                         else [])
    badge = (f'<span class="qa-num" title="marker [{rank}]">[{rank}]</span>' if not related
             else f'<span class="qa-num qa-num-rel">{rank}</span>')
    tag = ('<span class="qa-tag qa-tag-cited">cited</span>' if cited else
           '<span class="qa-tag">possibly related</span>' if related else
           '<span class="qa-tag">retrieved</span>')
    text = _marked(str(p["text"]), int(p["start"]), [] if related else p.get("highlights") or [])
    more = ("" if cited else
            '<button type="button" class="qa-more" aria-expanded="false">Show whole passage'
            '</button>')
    return (
        f'<article class="{" ".join(classes)}" id="{prefix}-{turn}-{rank}">'
        f'<header class="qa-src-head">{badge}<div class="qa-src-name">{_doc_label(p)}'
        f'<span class="qa-src-where">{esc(_where(p))}</span></div>'
        f'<div class="qa-src-side">{tag}<span class="qa-score" title="match score">'
        f'{float(p["score"]):.3f}</span></div></header>'
        f'<div class="qa-src-text">{text}</div>{more}</article>'
    )


def render_turn_sources(turn: int, entry: dict[str, Any]) -> str:
    res = entry.get("result")
    if not res:
        return ""
    passages = res.get("passages") or []
    related = bool(res.get("abstained"))
    if related:
        head = ('<p class="qa-related-note">No passage supports an answer. These are the closest '
                'passages, <strong>possibly related</strong>; they are not sources.</p>')
    else:
        n_cited = sum(1 for p in passages if p.get("highlights"))
        head = (f'<p class="qa-src-summary">{n_cited} cited of {len(passages)} retrieved '
                f'passage{"s" * (len(passages) != 1)}, best match first.</p>')
    body = "".join(render_passage(p, turn, related=related) for p in passages)
    if not passages:
        body = '<p class="qa-empty-note">The index returned no passages.</p>'
    return head + body


def render_sources(turns: Sequence[dict[str, Any]]) -> str:
    done = [(i + 1, t) for i, t in enumerate(turns) if t.get("result")]
    if not done:
        pending = any(t.get("pending") for t in turns)
        msg = ("Looking for the passages…" if pending else
               "The passages behind each answer appear here, best match first, with the quoted "
               "sentences highlighted. Click a marker such as <span class=\"qa-cite-demo\">[1]"
               "</span> in an answer to jump to its passage.")
        return (f'<div class="qa-panel qa-sources"><div class="qa-panel-head"><h2>Sources</h2>'
                f'</div><div class="qa-scroll" id="qa-sources-scroll"><div class="qa-placeholder">'
                f'{msg}</div></div></div>')
    latest_turn, latest = done[-1]
    kind = "Possibly related" if latest["result"].get("abstained") else "Sources"
    parts = [
        f'<div class="qa-panel qa-sources"><div class="qa-panel-head"><h2>{kind}</h2>'
        f'<span class="qa-for" title="{esc(latest["q"])}">for “{esc(one_line(latest["q"], 70))}”'
        f'</span></div><div class="qa-scroll" id="qa-sources-scroll">'
        f'<section class="qa-turn-sources" id="sources-{latest_turn}">'
        f'{render_turn_sources(latest_turn, latest)}</section>'
    ]
    earlier = done[:-1][-MAX_EARLIER_TURNS:]
    if earlier:
        parts.append('<h3 class="qa-earlier-head">Earlier questions</h3>')
        for turn, t in reversed(earlier):
            what = "possibly related" if t["result"].get("abstained") else "sources"
            n = len(t["result"].get("passages") or [])
            parts.append(
                f'<details class="qa-earlier" id="sources-{turn}"><summary>'
                f'<span class="qa-earlier-q">“{esc(one_line(t["q"], 90))}”</span>'
                f'<span class="qa-earlier-n">{n} {what}</span></summary>'
                f'{render_turn_sources(turn, t)}</details>'
            )
    parts.append("</div></div>")
    return "".join(parts)


def render_answer(turn: int, res: dict[str, Any]) -> str:
    if res.get("abstained"):
        n = len(res.get("passages") or [])
        return (
            f'<div class="qa-a qa-a-abstained"><div class="qa-a-label">No answer</div>'
            f'<p class="qa-a-text">{esc(NOT_FOUND)}</p>'
            f'<p class="qa-a-meta">The documents do not seem to answer this. '
            f'<a class="qa-rel-link" href="#sources-{turn}">{n} possibly related '
            f'passage{"s" * (n != 1)}</a> are listed on the right, not as sources.</p></div>'
        )
    cits = res.get("citations") or []
    if cits:
        sentences = []
        for c in cits:
            m = int(c["marker"])
            sentences.append(
                f'{esc(" ".join(str(c["text"]).split()))} '
                f'<a class="qa-cite" href="#src-{turn}-{m}" data-turn="{turn}" data-n="{m}" '
                f'title="Show passage {m}">[{m}]</a>'
            )
        body = " ".join(sentences)
    else:
        body = esc(res.get("answer", ""))
    by_rank = {int(p["rank"]): p for p in res.get("passages") or []}
    chips = []
    for m in sorted({int(c["marker"]) for c in cits}):
        p = by_rank.get(m)
        if p is None:
            continue
        chips.append(
            f'<a class="qa-chip" href="#src-{turn}-{m}"><span class="qa-chip-n">[{m}]</span>'
            f'{esc(p["doc_id"])}</a>'
        )
    conf = res.get("confidence")
    meta = (f'<span class="qa-conf" title="calibrated confidence that the documents answer the '
            f'question">confidence {float(conf):.0%}</span>' if conf is not None else "")
    return (
        f'<div class="qa-a"><div class="qa-a-label">Answer</div>'
        f'<p class="qa-a-text">{body}</p>'
        f'<div class="qa-a-foot"><div class="qa-chips">{"".join(chips)}</div>{meta}</div></div>'
    )


def render_conversation(turns: Sequence[dict[str, Any]]) -> str:
    if not turns:
        return (
            '<div class="qa-conv" id="qa-conv"><div class="qa-welcome">'
            '<div class="qa-welcome-icon" aria-hidden="true">❝</div>'
            '<h2>Ask a question about the documents</h2>'
            '<p>Answers are sentences quoted from the documents, each followed by a marker like '
            '<span class="qa-cite-demo">[1]</span>. The marked passage appears under '
            '<em>Sources</em>, with the quoted sentence highlighted. Questions can be in English '
            'or German, whatever the language of the documents.</p>'
            '<p class="qa-welcome-hint">Try an example below, or type your own question.</p>'
            '</div></div>'
        )
    out = ['<div class="qa-conv" id="qa-conv">']
    for i, t in enumerate(turns, start=1):
        out.append(f'<div class="qa-turn" id="turn-{i}"><div class="qa-q"><p>{esc(t["q"])}</p>'
                   f'</div>')
        if t.get("pending"):
            out.append('<div class="qa-a qa-a-pending"><div class="qa-a-label">Searching the '
                       'documents</div><span class="qa-dots" aria-label="working"><i></i><i></i>'
                       '<i></i></span></div>')
        elif t.get("error"):
            out.append(f'<div class="qa-a qa-a-error" role="alert"><div class="qa-a-label">'
                       f'Could not answer</div><p class="qa-a-text">{esc(t["error"])}</p></div>')
        elif t.get("result"):
            out.append(render_answer(i, t["result"]))
        out.append("</div>")
    out.append("</div>")
    return "".join(out)


def render_stats(info: dict[str, Any]) -> str:
    return (
        '<div class="qa-header"><div class="qa-brand"><div class="qa-logo" aria-hidden="true">'
        f'❝</div><div><h1>{esc(TITLE)}</h1><p class="qa-tagline">{esc(TAGLINE)}</p></div></div>'
        '<div class="qa-pill" id="qa-index-pill" title="the index being searched">'
        f'<span><b>{int(info["documents"]):,}</b> documents</span>'
        f'<span><b>{int(info["passages"]):,}</b> passages</span>'
        f'<span>model <b>{esc(info["embedder"])}</b></span></div></div>'
    )


def render_index(info: dict[str, Any], documents: Sequence[dict[str, Any]]) -> str:
    rows = []
    for d in list(documents)[:MAX_LISTED_DOCUMENTS]:
        title, doc_id = str(d.get("title") or ""), str(d["doc_id"])
        name = esc(doc_id) if title in ("", doc_id) else (
            f'{esc(title)} <span class="qa-doc-id">{esc(doc_id)}</span>')
        rows.append(
            f'<li><span class="qa-doc-name">{name}</span><span class="qa-doc-meta">'
            f'{_plural(int(d["passages"]), "passage")} · {int(d["chars"]):,} characters</span></li>'
        )
    more = len(documents) - MAX_LISTED_DOCUMENTS
    if more > 0:
        rows.append(f'<li class="qa-doc-more">and {more:,} more</li>')
    return (
        '<div class="qa-panel qa-index" id="qa-index"><div class="qa-panel-head"><h2>Index</h2>'
        f'<span class="qa-for">{esc(info.get("index_dir", ""))}</span></div>'
        '<div class="qa-stats">'
        f'<div><b id="qa-doc-count">{int(info["documents"]):,}</b><span>documents</span></div>'
        f'<div><b>{int(info["passages"]):,}</b><span>passages</span></div>'
        f'<div><b>{int(info.get("sentences", 0)):,}</b><span>sentences</span></div>'
        f'<div><b class="qa-model">{esc(info["embedder"])}</b><span>model</span></div></div>'
        f'<ul class="qa-docs">{"".join(rows)}</ul></div>'
    )


def render_upload_status(rep: dict[str, Any] | None, error: str | None = None) -> str:
    if error:
        return (f'<div class="qa-status qa-status-bad" role="alert">'
                f'<p>Upload failed: {esc(error)}</p><p>Nothing already in the index was changed.'
                f'</p></div>')
    if rep is None:
        sup = ", ".join(s for s in SUPPORTED_SUFFIXES if s != ".markdown")
        return (f'<div class="qa-status qa-status-idle"><p>{esc(sup)}, up to '
                f'{MAX_UPLOAD_BYTES // 2**20} MB each. New documents are searchable as soon as '
                f'they are added; a file with the name of an indexed one replaces it.</p></div>')
    bad = bool(rep["skipped"])
    good = bool(rep["added"] or rep["updated"] or rep["unchanged"])
    kind = "qa-status-warn" if bad and good else "qa-status-bad" if bad else "qa-status-ok"
    lines = "".join(f"<p>{esc(line)}</p>" for line in rep["message"].split("\n"))
    return f'<div class="qa-status {kind}" role="status">{lines}</div>'


# -- the app --------------------------------------------------------------------------------------

CSS = r"""
.gradio-container { max-width: 1360px !important; margin: 0 auto !important; }
.gradio-container { --qa-accent: #4f46e5; --qa-accent-soft: #eef2ff; --qa-mark: #fde68a;
  --qa-mark-text: #1f2937; --qa-muted: var(--body-text-color-subdued);
  --qa-border: var(--border-color-primary); --qa-card: var(--background-fill-primary);
  --qa-soft: var(--background-fill-secondary); }
.dark .gradio-container, .gradio-container.dark { --qa-accent: #a5b4fc;
  --qa-accent-soft: rgba(129,140,248,.16); --qa-mark: rgba(250,204,21,.35);
  --qa-mark-text: inherit; }
.gradio-container .prose { max-width: none !important; }
#qa-header .html-container, #qa-chat .html-container, #qa-sources .html-container,
#qa-index-panel .html-container, #qa-upload-status .html-container,
#qa-upload-title .html-container { padding: 0 !important; }

/* header */
.qa-header { display: flex; align-items: center; justify-content: space-between; gap: 16px;
  flex-wrap: wrap; padding: 6px 2px 10px; }
.qa-brand { display: flex; gap: 14px; align-items: center; min-width: 0; flex: 1 1 420px; }
.qa-logo { width: 44px; height: 44px; border-radius: 12px; background: var(--qa-accent);
  color: #fff; display: grid; place-items: center; font-size: 30px; line-height: 1;
  padding-top: 10px; flex: none; font-family: Georgia, serif; }
.dark .qa-logo { color: #1e1b4b; }
.qa-header h1 { font-size: 1.5rem !important; margin: 0 !important; font-weight: 700;
  letter-spacing: -.01em; }
.qa-tagline { margin: 2px 0 0 !important; color: var(--qa-muted); font-size: .95rem; }
.qa-pill { display: flex; gap: 14px; flex-wrap: wrap; flex: none;
  border: 1px solid var(--qa-border); border-radius: 999px; padding: 6px 14px;
  font-size: .85rem; color: var(--qa-muted);
  background: var(--qa-card); }
.qa-pill b { color: var(--body-text-color); font-weight: 600; }

/* panels */
.qa-panel { border: 1px solid var(--qa-border); border-radius: 14px; background: var(--qa-card);
  overflow: hidden; }
.qa-panel-head { display: flex; align-items: baseline; gap: 10px; padding: 12px 16px 10px;
  border-bottom: 1px solid var(--qa-border); min-width: 0; }
.qa-panel-head h2 { font-size: 1rem !important; margin: 0 !important; font-weight: 650;
  flex: none; }
.qa-for { color: var(--qa-muted); font-size: .85rem; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; min-width: 0; flex: 1 1 0; width: 0; }
.qa-scroll { height: clamp(365px, calc(100vh - 415px), 865px); overflow-y: auto;
  padding: 12px 14px 18px; scroll-behavior: smooth; }
.qa-placeholder { color: var(--qa-muted); padding: 28px 12px; text-align: center;
  font-size: .95rem; }

/* conversation */
.qa-conv { height: clamp(340px, calc(100vh - 440px), 840px); overflow-y: auto;
  border: 1px solid var(--qa-border); border-radius: 14px; background: var(--qa-soft);
  padding: 18px 18px 8px; scroll-behavior: smooth; }
.qa-welcome { max-width: 560px; margin: 8% auto 0; text-align: center;
  color: var(--body-text-color); }
.qa-welcome h2 { font-size: 1.25rem !important; margin: 6px 0 10px !important; }
.qa-welcome p { color: var(--qa-muted); margin: 0 0 10px !important; }
.qa-welcome-icon { font-family: Georgia, serif; font-size: 56px; line-height: .6;
  color: var(--qa-accent); opacity: .8; padding-top: 24px; }
.qa-welcome-hint { font-size: .9rem; }
.qa-turn { margin-bottom: 18px; }
.qa-q { display: flex; justify-content: flex-end; margin-bottom: 8px; }
.qa-q p { margin: 0 !important; background: var(--qa-accent); color: #fff; padding: 9px 14px;
  border-radius: 16px 16px 4px 16px; max-width: 85%; white-space: pre-wrap;
  overflow-wrap: anywhere; }
.dark .qa-q p { color: #1e1b4b; }
.qa-a { background: var(--qa-card); border: 1px solid var(--qa-border);
  border-radius: 4px 16px 16px 16px; padding: 10px 16px 12px; max-width: 94%;
  box-shadow: 0 1px 2px rgba(15,23,42,.04); }
.qa-a-label { font-size: .72rem; text-transform: uppercase; letter-spacing: .06em;
  color: var(--qa-muted); font-weight: 600; margin-bottom: 4px; }
.qa-a-text { margin: 0 !important; font-size: 1rem; line-height: 1.65; overflow-wrap: anywhere; }
.qa-a-foot { display: flex; justify-content: space-between; align-items: center; gap: 10px;
  margin-top: 10px; flex-wrap: wrap; }
.qa-chips { display: flex; flex-wrap: wrap; gap: 6px; }
.qa-chip { display: inline-flex; gap: 6px; align-items: center; font-size: .8rem;
  border: 1px solid var(--qa-border); border-radius: 999px; padding: 2px 10px 2px 4px;
  color: var(--body-text-color) !important; text-decoration: none !important;
  background: var(--qa-soft); max-width: 100%; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
.qa-chip:hover { border-color: var(--qa-accent); }
.qa-chip-n { background: var(--qa-accent-soft); color: var(--qa-accent); border-radius: 999px;
  padding: 0 6px; font-weight: 600; }
.qa-conf { font-size: .78rem; color: var(--qa-muted); white-space: nowrap; }
a.qa-cite, .qa-cite-demo { display: inline-block; font-size: .78em; font-weight: 650;
  line-height: 1.3; padding: 0 5px; margin: 0 1px; border-radius: 6px;
  background: var(--qa-accent-soft); color: var(--qa-accent) !important;
  text-decoration: none !important; vertical-align: 1px; cursor: pointer; }
a.qa-cite:hover, a.qa-cite:focus-visible { background: var(--qa-accent); color: #fff !important;
  outline: none; }
.qa-a-abstained { border-style: dashed; background: var(--qa-soft); }
.qa-a-abstained .qa-a-text { color: var(--qa-muted); font-style: italic; }
.qa-a-meta { margin: 6px 0 0 !important; font-size: .85rem; color: var(--qa-muted); }
.qa-a-error { border-color: #fca5a5; }
.qa-a-error .qa-a-text { color: #b91c1c; font-size: .95rem; }
.qa-a-pending { display: inline-flex; align-items: center; gap: 10px; }
.qa-a-pending .qa-a-label { margin: 0; }
.qa-dots i { display: inline-block; width: 6px; height: 6px; margin: 0 2px; border-radius: 50%;
  background: var(--qa-accent); opacity: .3; animation: qa-blink 1.2s infinite; }
.qa-dots i:nth-child(2) { animation-delay: .2s;
  } .qa-dots i:nth-child(3) { animation-delay: .4s; }
@keyframes qa-blink { 40% { opacity: 1; } }

/* sources */
.qa-src-summary, .qa-related-note { font-size: .85rem; color: var(--qa-muted);
  margin: 0 0 10px !important; }
.qa-related-note { border: 1px dashed var(--qa-border); border-radius: 10px; padding: 8px 10px; }
.qa-src { border: 1px solid var(--qa-border); border-radius: 12px; padding: 10px 12px 12px;
  margin-bottom: 10px; background: var(--qa-card); scroll-margin-top: 10px;
  transition: box-shadow .3s, border-color .3s; }
.qa-src.is-cited { border-left: 4px solid var(--qa-accent); }
.qa-src.is-retrieved { background: var(--qa-soft); }
.qa-src.is-related { border-style: dashed; background: var(--qa-soft); opacity: .92; }
.qa-src.qa-flash { border-color: var(--qa-accent); box-shadow: 0 0 0 3px var(--qa-accent-soft); }
.qa-src-head { display: flex; gap: 10px; align-items: flex-start; margin-bottom: 6px; }
.qa-num { flex: none; font-weight: 700; font-size: .8rem; color: var(--qa-accent);
  background: var(--qa-accent-soft); border-radius: 6px; padding: 1px 6px; margin-top: 2px; }
.qa-num-rel { color: var(--qa-muted); background: transparent;
  border: 1px dashed var(--qa-border); }
.qa-src-name { display: flex; flex-direction: column; min-width: 0; flex: 1; }
.qa-src-title { font-weight: 600; font-size: .92rem; overflow-wrap: anywhere; }
.qa-src-doc { font-size: .8rem; color: var(--qa-muted); overflow-wrap: anywhere; }
.qa-src-where { font-size: .78rem; color: var(--qa-muted); }
.qa-src-side { display: flex; flex-direction: column; align-items: flex-end; gap: 3px;
  flex: none; }
.qa-tag { font-size: .7rem; text-transform: uppercase; letter-spacing: .05em;
  color: var(--qa-muted); border: 1px solid var(--qa-border); border-radius: 999px;
  padding: 0 7px; }
.qa-tag-cited { color: var(--qa-accent); border-color: var(--qa-accent); }
.qa-score { font-size: .75rem; color: var(--qa-muted); font-variant-numeric: tabular-nums; }
.qa-src-text { font-size: .9rem; line-height: 1.6; white-space: pre-line; overflow-wrap: anywhere;
  font-family: Charter, "Iowan Old Style", "Source Serif Pro", Georgia, serif; }
.qa-src-text mark { background: var(--qa-mark); color: var(--qa-mark-text); padding: 1px 2px;
  border-radius: 3px; box-decoration-break: clone; -webkit-box-decoration-break: clone; }
.qa-src:not(.is-cited):not(.qa-open) .qa-src-text { display: -webkit-box; -webkit-line-clamp: 3;
  -webkit-box-orient: vertical; overflow: hidden; }
.qa-more { margin-top: 4px; font-size: .8rem; color: var(--qa-accent); background: none;
  border: 0; padding: 0; cursor: pointer; }
.qa-earlier-head { font-size: .8rem !important; text-transform: uppercase; letter-spacing: .06em;
  color: var(--qa-muted); margin: 18px 0 8px !important; font-weight: 600; }
.qa-earlier { border: 1px solid var(--qa-border); border-radius: 10px; margin-bottom: 8px;
  padding: 0 10px; background: var(--qa-soft); }
.qa-earlier > summary { cursor: pointer; padding: 8px 0; display: flex; gap: 10px;
  justify-content: space-between; font-size: .88rem; position: sticky; top: -12px; z-index: 2;
  background: var(--qa-soft); }
.qa-earlier[open] > summary { border-bottom: 1px solid var(--qa-border); margin-bottom: 8px; }
.qa-earlier-q { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; min-width: 0;
  flex: 1 1 0; width: 0; }
.qa-earlier-n { color: var(--qa-muted); flex: none; font-size: .8rem; }

/* composer */
.qa-composer { align-items: stretch !important; gap: 8px !important; }
.qa-composer textarea { font-size: 1rem !important; }
.qa-send { min-width: 96px !important; }
#qa-examples { display: grid !important; grid-template-columns: repeat(2, minmax(0, 1fr));
  gap: 6px !important; margin-top: 2px; }
#qa-examples > button { width: 100% !important; min-width: 0 !important;
  justify-content: flex-start; text-align: left; font-weight: 450 !important;
  font-size: .84rem !important;
  border-radius: 10px !important; padding: 6px 12px !important; white-space: normal;
  line-height: 1.35; }
.qa-controls { align-items: center !important; gap: 12px !important; margin-top: 4px; }

/* index and upload */
.qa-lower { margin-top: 18px !important; gap: 16px !important; }
.qa-stats { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 8px;
  padding: 12px 14px 4px; }
.qa-stats > div { background: var(--qa-soft); border-radius: 10px; padding: 8px 10px;
  display: flex; flex-direction: column; min-width: 0; }
.qa-stats b { font-size: 1.15rem; font-weight: 650; overflow: hidden; text-overflow: ellipsis; }
.qa-stats b.qa-model { font-size: .95rem; padding-top: 3px; }
.qa-stats span { font-size: .75rem; color: var(--qa-muted); }
.qa-docs { list-style: none; margin: 8px 0 0 !important; padding: 0 14px 12px !important;
  max-height: 260px; overflow-y: auto; }
.qa-docs li { display: flex; justify-content: space-between; gap: 10px; padding: 7px 0;
  border-bottom: 1px solid var(--qa-border); font-size: .88rem; margin: 0 !important; }
.qa-docs li:last-child { border-bottom: 0; }
.qa-doc-name { overflow-wrap: anywhere; min-width: 0; }
.qa-doc-id, .qa-doc-meta { color: var(--qa-muted); font-size: .8rem; }
.qa-doc-meta { white-space: nowrap; }
.qa-status { border-radius: 10px; padding: 8px 12px; font-size: .88rem; margin-top: 8px; }
.qa-status p { margin: 0 0 2px !important; overflow-wrap: anywhere; }
.qa-status-idle { color: var(--qa-muted); padding-left: 2px; }
.qa-status-ok { background: #ecfdf5; color: #065f46; border: 1px solid #a7f3d0; }
.qa-status-warn { background: #fffbeb; color: #92400e; border: 1px solid #fde68a; }
.qa-status-bad { background: #fef2f2; color: #991b1b; border: 1px solid #fecaca; }
.dark .qa-status-ok { background: rgba(16,185,129,.12); color: #6ee7b7;
  border-color: rgba(16,185,129,.4); }
.dark .qa-status-warn { background: rgba(245,158,11,.12); color: #fcd34d;
  border-color: rgba(245,158,11,.4); }
.dark .qa-status-bad { background: rgba(239,68,68,.12); color: #fca5a5;
  border-color: rgba(239,68,68,.4); }
.qa-upload-card { border: 1px solid var(--qa-border) !important; border-radius: 14px !important;
  padding: 12px 14px !important; background: var(--qa-card) !important; }
.qa-card-title { font-size: 1rem; margin: 0; font-weight: 650; }

@media (max-width: 700px) {
  #qa-examples { grid-template-columns: minmax(0, 1fr); }
}
@media (max-width: 900px) {
  .qa-conv, .qa-scroll { height: auto; max-height: none; min-height: 0; }
  .qa-conv { min-height: 300px; }
  .qa-stats { grid-template-columns: repeat(2, minmax(0, 1fr)); }
}
"""

# Runs once per component render (Gradio 6 gr.HTML js_on_load): makes [n] markers bring their
# passage into view (opening an earlier question's sources when needed) and keeps the
# conversation scrolled to the newest answer.
CONVERSATION_JS = r"""
const reveal = (id) => {
  const el = document.getElementById(id);
  if (!el) return false;
  const box = el.closest('details');
  if (box && !box.open) box.open = true;
  const scroller = el.closest('.qa-scroll');
  if (scroller && scroller.scrollHeight > scroller.clientHeight + 1) {
    const offset = box ? box.querySelector('summary').offsetHeight + 4 : 8;
    const top = el.getBoundingClientRect().top - scroller.getBoundingClientRect().top
      + scroller.scrollTop - offset;
    scroller.scrollTo({top: top, behavior: 'smooth'});
    const r = scroller.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) {
      scroller.scrollIntoView({block: 'nearest', behavior: 'smooth'});
    }
  } else {
    el.scrollIntoView({block: 'start', behavior: 'smooth'});
  }
  el.classList.remove('qa-flash');
  void el.offsetWidth;
  el.classList.add('qa-flash');
  setTimeout(() => el.classList.remove('qa-flash'), 1800);
  return true;
};
element.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[href^="#src-"], a[href^="#sources-"]');
  if (!a) return;
  if (reveal(a.getAttribute('href').slice(1))) ev.preventDefault();
});
const toLatest = () => {
  const conv = element.querySelector('.qa-conv');
  if (!conv) return;
  const turns = conv.querySelectorAll('.qa-turn');
  const last = turns[turns.length - 1];
  if (!last) { conv.scrollTop = 0; return; }
  // the newest question at the top (or the end of the conversation, when it is shorter)
  conv.scrollTop = last.getBoundingClientRect().top - conv.getBoundingClientRect().top
    + conv.scrollTop - 12;
};
if (typeof watch === 'function') watch('value', () => setTimeout(toLatest, 30));
toLatest();
"""

SOURCES_JS = r"""
element.addEventListener('click', (ev) => {
  const b = ev.target.closest('.qa-more');
  if (!b) return;
  const art = b.closest('.qa-src');
  const open = art.classList.toggle('qa-open');
  b.textContent = open ? 'Show less' : 'Show whole passage';
  b.setAttribute('aria-expanded', open ? 'true' : 'false');
});
"""


def theme() -> Any:
    import gradio as gr

    return gr.themes.Soft(
        primary_hue="indigo",
        neutral_hue="slate",
        font=["Inter", "ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto",
              "Helvetica Neue", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )


def mount_kwargs() -> dict[str, Any]:
    """Look and feel, for ``gr.mount_gradio_app`` or ``Blocks.launch`` (Gradio 6 takes them
    there, not in ``gr.Blocks``)."""
    return {"theme": theme(), "css": CSS}


def build_app(retriever: Any) -> Any:
    """The chat as a ``gr.Blocks``; ``qa serve`` serves it (or ``.launch(**mount_kwargs())``)."""
    import gradio as gr

    core = Core(retriever)

    def index_views() -> tuple[str, str]:
        info = retriever.info()
        return render_stats(info), render_index(info, retriever.documents())

    # ---- chat handlers (UI only: hidden from the API) ----
    def start(question: str, turns: list[dict[str, Any]]) -> tuple[Any, Any, Any, Any]:
        q = (question or "").strip()
        if not q:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        turns = [*(turns or []), {"q": q, "pending": True}]
        return "", render_conversation(turns), render_sources(turns), turns

    def finish(turns: list[dict[str, Any]], k: float) -> tuple[Any, Any, Any]:
        if not turns or not any(t.get("pending") for t in turns):
            return gr.skip(), gr.skip(), gr.skip()
        out = []
        for t in turns:
            if t.get("pending"):
                t = {"q": t["q"]}
                try:
                    t["result"] = core.ask(t["q"], int(round(k or DEFAULT_K)))
                except QAError as exc:
                    t["error"] = str(exc)
            out.append(t)
        return render_conversation(out), render_sources(out), out

    def clear() -> tuple[str, str, list[Any], str]:
        return render_conversation([]), render_sources([]), [], ""

    def on_upload(
        files: list[str] | None, progress: Any = gr.Progress()  # noqa: B008 (Gradio's idiom)
    ) -> tuple[Any, ...]:
        if not files:
            return (gr.skip(),) * 4
        progress(0, desc="Reading files")

        def step(done: int, total: int) -> None:
            progress((done, total) if total else 1.0, desc="Embedding passages", unit="texts")

        try:
            rep = core.upload(files, progress=step)
            status = render_upload_status(rep)
        except QAError as exc:
            status = render_upload_status(None, error=str(exc))
        stats, index = index_views()
        return status, stats, index, None

    # ---- API handlers (gradio_client) ----
    def api_ask(question: str, k: int = DEFAULT_K) -> dict:  # type: ignore[type-arg]
        """Answer a question from the documents: `answer` (sentences each followed by [n]),
        `abstained`, `confidence`, `citations`, and `passages` in rank order, each with
        `highlights` (document offsets of the cited sentences) and `highlight_texts`."""
        try:
            return core.ask(question, k)
        except QAError as exc:
            raise gr.Error(str(exc), print_exception=False) from exc

    def api_search(question: str, k: int = DEFAULT_K) -> dict:  # type: ignore[type-arg]
        """The k passages that best match the question, best first."""
        try:
            return core.search(question, k)
        except QAError as exc:
            raise gr.Error(str(exc), print_exception=False) from exc

    def api_info() -> dict:  # type: ignore[type-arg]
        """What is in the index: counts, model, chunking, and the documents."""
        return core.info()

    def api_upload(files: list[str] | None) -> dict[str, Any]:
        """Add documents (.txt, .md, .html, .pdf; 20 MB each) to the index; returns what was
        added, updated, unchanged or skipped (with reasons), and a message."""
        try:
            return core.upload(files or [])
        except QAError as exc:
            raise gr.Error(str(exc), print_exception=False) from exc

    info0 = retriever.info()
    docs0 = retriever.documents()
    with one_line_blocks()(title=f"{TITLE} · qa") as demo:
        turns = gr.State([])
        header = gr.HTML(render_stats(info0), elem_id="qa-header", apply_default_css=False)
        with gr.Row(equal_height=False, elem_id="qa-main"):
            with gr.Column(scale=11, min_width=380):
                chat = gr.HTML(render_conversation([]), elem_id="qa-chat",
                               js_on_load=CONVERSATION_JS, apply_default_css=False)
                with gr.Row(elem_classes=["qa-composer"]):
                    question = gr.Textbox(
                        placeholder="Ask a question in English or German…", show_label=False,
                        lines=1, max_lines=6, scale=8, container=False, autofocus=True,
                        elem_id="qa-question", max_length=MAX_QUESTION_CHARS,
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, min_width=96,
                                     elem_id="qa-send", elem_classes=["qa-send"])
                with gr.Row(elem_id="qa-examples"):
                    example_buttons = [
                        gr.Button(q, size="sm", variant="secondary", scale=0, min_width=0)
                        for q in EXAMPLES
                    ]
            with gr.Column(scale=9, min_width=340):
                sources = gr.HTML(render_sources([]), elem_id="qa-sources",
                                  js_on_load=SOURCES_JS, apply_default_css=False)
                with gr.Row(elem_classes=["qa-controls"], equal_height=True):
                    k = gr.Slider(1, MAX_UI_K, value=DEFAULT_K, step=1,
                                  label="Passages to retrieve", scale=3, elem_id="qa-k")
                    clear_btn = gr.Button("Clear chat", variant="secondary", size="md",
                                          scale=1, min_width=110, elem_id="qa-clear")
        with gr.Row(equal_height=False, elem_classes=["qa-lower"]):
            with gr.Column(scale=11, min_width=340):
                index_panel = gr.HTML(render_index(info0, docs0), elem_id="qa-index-panel",
                                      apply_default_css=False)
            with gr.Column(scale=9, min_width=320, elem_classes=["qa-upload-card"]):
                gr.HTML('<h2 class="qa-card-title">Add documents</h2>', apply_default_css=False,
                        elem_id="qa-upload-title")
                files = gr.File(
                    label="Documents (.txt, .md, .html, .pdf)", file_count="multiple",
                    file_types=list(SUPPORTED_SUFFIXES), type="filepath", height=120,
                    elem_id="qa-upload",
                )
                upload_status = gr.HTML(render_upload_status(None), elem_id="qa-upload-status",
                                        apply_default_css=False)

        # The API endpoints, with hidden components so that uploaded files go through Gradio's
        # upload checks (a client cannot name a file on the server).
        with gr.Row(visible=False):
            api_files = gr.File(file_count="multiple", type="filepath")
            api_report = gr.JSON()
            api_upload_btn = gr.Button()

        private: dict[str, Any] = {"api_visibility": "private"}
        ev = gr.on([question.submit, send.click], start, [question, turns],
                   [question, chat, sources, turns], show_progress="hidden", **private)
        ev.then(finish, [turns, k], [chat, sources, turns], show_progress="hidden", **private)
        for b, q in zip(example_buttons, EXAMPLES):
            b.click(partial(start, q), [turns], [question, chat, sources, turns],
                    show_progress="hidden", **private).then(
                finish, [turns, k], [chat, sources, turns], show_progress="hidden", **private)
        clear_btn.click(clear, None, [chat, sources, turns, question], **private)
        files.upload(on_upload, [files], [upload_status, header, index_panel, files],
                     show_progress="full", show_progress_on=[upload_status], **private)
        demo.load(index_views, None, [header, index_panel], **private)

        gr.api(api_ask, api_name="ask")
        gr.api(api_search, api_name="search")
        gr.api(api_info, api_name="info")
        api_upload_btn.click(api_upload, [api_files], [api_report], api_name="upload")
    return demo
