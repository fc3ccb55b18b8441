"""Showing answers on a terminal: text from documents or a model never reaches the terminal as
something it would act on (escape sequences, bidi overrides, newlines in names)."""

from __future__ import annotations

import json
import re
from typing import Any

# Characters a terminal acts on rather than shows: C0/C1 controls (ESC starts sequences that retitle
# the window or clear the screen), DEL, bidi overrides, and line or paragraph separators.
_TERMINAL_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                              "\u202a-\u202e\u2066-\u2069]")


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` safe to print on a terminal: what a terminal would act on (escape sequences from a
    document's text, a newline in a file name) is shown as an escape like ``\\x1b``; newlines
    are kept when ``newlines``."""
    def escape(m: re.Match[str]) -> str:
        ch = m.group()
        if ch == "\n" and newlines:
            return ch
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"

    return _TERMINAL_UNSAFE.sub(escape, text)


def json_line(obj: Any) -> str:
    """One JSON line with the characters above written as ``\\u`` escapes: the same JSON value,
    and safe on a terminal (``json.dumps`` escapes only C0 controls)."""
    return _TERMINAL_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}",
                                json.dumps(obj, ensure_ascii=False))


def print_answer(answer: Any) -> None:
    """The answer as ``qa ask`` and ``qa chat`` show it: the text (or the checked sentences of a
    generated answer), then each passage with where it comes from."""
    if answer.notice:
        print(f"note: {answer.notice}\n")
    if answer.abstained:
        print("Not found in the documents. The closest passages, possibly related:\n")
    elif answer.mode == "generated":
        print(f"(written by {answer.model}; every sentence checked against its passages)")
        for s in answer.answer_sentences():
            marks = "".join(f" [{m}]" for m in s.markers)
            flag = "" if s.supported else "  <- NOT SUPPORTED by the cited passages"
            print(f"{printable(s.text)}{marks}{flag}")
        print()
    else:
        print(printable(answer.text, newlines=True) + "\n")
    for p in answer.passages:
        print(f"[{p.rank}] {printable(p.doc_id)} ({printable(p.title)}), characters "
              f"{p.start}-{p.end}, score {p.score:.3f}")
        text = " ".join(p.text.split())
        print("    " + printable(text if len(text) <= 400 else text[:400] + "..."))
