"""Document text as safe HTML with the cited spans wrapped in ``<mark>``.

Plain text is escaped. Markdown documents are rendered with markdown-it-py with raw HTML turned
off (tags in a document show as text), images off (a document cannot make the browser fetch
anything) and links opened in a new tab without a referrer. Highlights are character offsets in
the document; they are carried through the Markdown renderer as two private-use characters that
become ``<mark>`` and ``</mark>`` afterwards, closed and reopened around every tag so the HTML
stays well nested.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

MARKDOWN_SUFFIXES = (".md", ".markdown")
_OPEN, _CLOSE = "\ue000", "\ue001"
_TAG = re.compile(r"(<[^>]*>)")
# A mark that opens before a line's block marker ("# ", "> ", "- ", "1. ") would stop Markdown
# from seeing the marker; it opens after it instead.
_BLOCK_MARKER = re.compile(
    "(^|\n)" + _OPEN + r"([ \t]*(?:#{1,6}[ \t]+|>[ \t]*|[-*+][ \t]+|\d{1,9}[.)][ \t]+))")


def is_markdown(doc_id: str) -> bool:
    """Whether a document is rendered as Markdown (by its file type)."""
    return str(doc_id).lower().endswith(MARKDOWN_SUFFIXES)


_INLINE = (
    (re.compile(r"\[([^\]\n]+)\]\([^)\s]*\)"), r"\1"),  # [text](url) -> text
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # **bold**, __bold__
    (re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"), r"\1"),  # *em*
    (re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"), r"\1"),  # _em_
    (re.compile(r"`([^`\n]+)`"), r"\1"),  # `code`
)


def plain_inline(text: str) -> str:
    """A Markdown sentence as a reader sees it: without the marks of emphasis, code and links
    (an answer quoted "the **red mushroom button**" from a .md document: found by a browser
    tester). Escaped later, like any answer text."""
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return text


def merged_spans(start: int, length: int,
                 highlights: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Document spans as sorted, non-overlapping offsets into a text that begins at ``start``."""
    spans = sorted((max(int(s) - start, 0), min(int(e) - start, length)) for s, e in highlights)
    merged: list[list[int]] = []
    for s, e in spans:
        if e <= s:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


@lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).disable("image")

    def link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("target", "_blank")
        tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
        return str(renderer.renderToken(tokens, idx, options, env))

    md.add_render_rule("link_open", link_open)
    return md


def _marks_nested(rendered: str) -> str:
    """Turn the sentinels into ``<mark>`` elements that never straddle a tag (a mark is closed
    before each tag and reopened at the next visible character inside the span)."""
    out: list[str] = []
    inside = emitted = False
    for part in _TAG.split(rendered):
        if part.startswith("<") and part.endswith(">"):
            if emitted:
                out.append("</mark>")
                emitted = False
            out.append(part)
            continue
        for ch in part:
            if ch == _OPEN:
                inside = True
            elif ch == _CLOSE:
                inside = False
                if emitted:
                    out.append("</mark>")
                    emitted = False
            else:
                if inside and not emitted and not ch.isspace():
                    out.append("<mark>")
                    emitted = True
                out.append(ch)
    if emitted:
        out.append("</mark>")
    return "".join(out)


def marked_html(text: str, start: int = 0, highlights: Sequence[Sequence[int]] = (), *,
                markdown: bool = False) -> str:
    """``text`` (which begins at document offset ``start``) as safe HTML, with the document
    spans in ``highlights`` marked. ``markdown`` renders it as Markdown, without raw HTML."""
    text = text.replace(_OPEN, "").replace(_CLOSE, "")
    spans = merged_spans(start, len(text), highlights)
    if not markdown:
        out, pos = [], 0
        for s, e in spans:
            out.append(html.escape(text[pos:s]))
            out.append(f"<mark>{html.escape(text[s:e])}</mark>")
            pos = e
        out.append(html.escape(text[pos:]))
        return "".join(out)
    pieces, pos = [], 0
    for s, e in spans:
        pieces += [text[pos:s], _OPEN, text[s:e], _CLOSE]
        pos = e
    pieces.append(text[pos:])
    source = _BLOCK_MARKER.sub(lambda m: m.group(1) + m.group(2) + _OPEN, "".join(pieces))
    return _marks_nested(_markdown().render(source))
