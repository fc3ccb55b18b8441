"""The chat's view of answers a language model writes: the text as it streams in, then each
sentence with its markers and, when the checker could not find it in the cited passages, a
visible "unsupported" mark (never silently dropped); the model's name; fallback notices.

Kept apart from :mod:`qa.ui.app` so that the chat's layout and this feature change separately.
"""

from __future__ import annotations

import html
from typing import Any

EXTRACTIVE = "Quoted sentences (no model)"
UNSUPPORTED_TITLE = "Not found in the cited passage: check the source before relying on this"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def model_choice(label: str) -> str:
    """The chat's choice that asks the language model."""
    return f"Model: {label}"


def _marker_links(turn: int, markers: list[int]) -> str:
    return "".join(
        f' <a class="qa-cite" href="#src-{turn}-{m}" data-turn="{turn}" data-n="{m}" '
        f'title="Show passage {m}">[{m}]</a>' for m in markers)


def render_sentences(turn: int, res: dict[str, Any]) -> str:
    """The generated answer's sentences, unsupported ones marked."""
    out = []
    for s in res.get("sentences") or []:
        markers = [int(m) for m in s.get("markers") or []]
        text = esc(" ".join(str(s.get("text", "")).split())) + _marker_links(turn, markers)
        if s.get("supported"):
            out.append(f'<span class="qa-sent">{text}</span>')
        else:
            out.append(f'<span class="qa-sent qa-unsupported" title="{esc(UNSUPPORTED_TITLE)}">'
                       f'{text}<span class="qa-unsupported-tag">unsupported</span></span>')
    return " ".join(out)


def render_notice(res: dict[str, Any]) -> str:
    notice = res.get("notice")
    if not notice:
        return ""
    return f'<p class="qa-notice" role="status">{esc(notice)}</p>'


def answer_label(res: dict[str, Any]) -> str:
    if res.get("mode") == "generated":
        return f'Answer · written by <span class="qa-model-name">{esc(res.get("model"))}</span>'
    return "Answer"


def render_rewrite(res: dict[str, Any]) -> str:
    rewritten = res.get("rewritten_question")
    if not rewritten or rewritten == res.get("question"):
        return ""
    return f'<p class="qa-rewrite">Searched as: “{esc(rewritten)}”</p>'


def render_streaming(turn: int, entry: dict[str, Any]) -> str:
    """A turn whose answer the model is still writing: the raw text so far."""
    rewrite = entry.get("rewrite")
    head = f'<p class="qa-rewrite">Searched as: “{esc(rewrite)}”</p>' if rewrite else ""
    return (
        f'<div class="qa-a qa-a-streaming" aria-busy="true"><div class="qa-a-label">Writing · '
        f'<span class="qa-model-name">{esc(entry.get("model", ""))}</span></div>{head}'
        f'<p class="qa-a-text qa-stream-text">{esc(entry.get("partial", ""))}'
        f'<span class="qa-caret" aria-hidden="true"></span></p></div>'
    )


CSS = """
.qa-sent { }
.qa-unsupported { text-decoration: underline wavy #d97706; text-underline-offset: 3px;
  background: rgba(245,158,11,.10); border-radius: 4px; }
.qa-unsupported-tag { font-size: .68rem; text-transform: uppercase; letter-spacing: .05em;
  color: #92400e; background: #fef3c7; border: 1px solid #fde68a; border-radius: 6px;
  padding: 0 5px; margin-left: 4px; vertical-align: 1px; }
.dark .qa-unsupported-tag { color: #fcd34d; background: rgba(245,158,11,.15);
  border-color: rgba(245,158,11,.4); }
.qa-notice { font-size: .85rem; color: #92400e; background: #fffbeb; border: 1px solid #fde68a;
  border-radius: 8px; padding: 4px 10px; margin: 0 0 8px !important; }
.dark .qa-notice { color: #fcd34d; background: rgba(245,158,11,.12);
  border-color: rgba(245,158,11,.4); }
.qa-rewrite { font-size: .82rem; color: var(--qa-muted); margin: 0 0 6px !important; }
.qa-model-name { text-transform: none; font-weight: 600; }
.qa-stream-text { white-space: pre-wrap; }
.qa-caret { display: inline-block; width: .5em; height: 1em; margin-left: 2px;
  vertical-align: -2px; background: var(--qa-accent, #4f46e5); animation: qa-blink 1s infinite; }
@keyframes qa-blink { 50% { opacity: 0; } }
"""
