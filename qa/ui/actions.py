"""What the chat can do with one index: ask, search, describe, upload, open and delete documents,
record feedback. Each method calls the library (``Retriever``, :mod:`qa.feedback`) and returns
plain data for the Gradio handlers and API endpoints; nothing here builds HTML.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import feedback
from ..errors import BadRequest
from ..limits import DEFAULT_K, check_k
from ..uploads import Received, add_uploads, remove_documents

MAX_UI_K = 20  # the slider's end: more passages than a side panel can show
MAX_VIEW_HIGHLIGHTS = 50


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


class ChatActions:
    """The operations behind the chat and its Gradio API, on one Retriever (and a language
    model, when ``answerer`` is a :class:`qa.generation.ModelAnswerer`)."""

    def __init__(self, retriever: Any, answerer: Any = None) -> None:
        self.r = retriever
        self.answerer = answerer
        self._indexing: list[str] = []  # names of the files an upload is adding right now
        # Whether Retriever.ask reads earlier turns (``history``); older versions do not.
        try:
            self._takes_history = "history" in inspect.signature(retriever.ask).parameters
        except (TypeError, ValueError):
            self._takes_history = False

    def _doc_passages(self) -> dict[str, int]:
        return {d["doc_id"]: d["passages"] for d in self.r.documents()}

    @property
    def indexing(self) -> list[str]:
        """The files being added to the index at this moment (empty when none)."""
        return list(self._indexing)

    def ask(self, question: str, k: Any = DEFAULT_K, *,
            history: Sequence[dict[str, str]] = (), use_model: bool = True) -> dict[str, Any]:
        """The answer dict; ``history`` (earlier ``{"question", "answer"}`` turns) is passed on
        when the retriever reads it. With a model configured (and ``use_model``) it writes the
        answer."""
        k = check_k(k)
        if self.answerer is not None and use_model:
            answer = self.answerer.ask(question, k, list(history))
        elif history and self._takes_history:
            answer = self.r.ask(question, k, history=list(history))
        else:
            answer = self.r.ask(question, k)
        return answer_payload(answer, self._doc_passages())

    def ask_stream(self, question: str, k: Any = DEFAULT_K, *,
                   history: Sequence[dict[str, str]] = (), use_model: bool = True) -> Any:
        """``(event, value)`` pairs: ``("rewrite", text)`` and ``("token", text)`` while the
        model writes, then ``("result", answer dict)``; without a model, the result alone."""
        if self.answerer is None or not use_model:
            yield "result", self.ask(question, k, history=history, use_model=False)
            return
        for ev in self.answerer.stream(question, check_k(k), list(history)):
            if ev.answer is not None:
                yield "result", answer_payload(ev.answer, self._doc_passages())
            else:
                yield ev.kind, ev.text

    def search(self, question: str, k: Any = DEFAULT_K) -> dict[str, Any]:
        passages = self.r.search(question, check_k(k))
        docs = self._doc_passages()
        return {"question": question, "passages": [passage_payload(p, docs) for p in passages]}

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.r.info())
        out["document_list"] = self.r.documents()
        return out

    def document(self, doc_id: Any, highlights: Any = ()) -> dict[str, Any]:
        """A whole document for the viewer: ``doc_id``, ``title``, ``text``, the document spans
        to highlight and ``moved``/``gone``: how many cited sentences are elsewhere now or no
        longer in it. ``highlights`` are at most 50 ``[start, end]`` or ``[start, end, text]``;
        with the text, a span is shown only where the document still holds that sentence (after
        an update, old offsets pointed into other text: a browser tester saw half of another
        sentence highlighted as "1 cited span")."""
        doc_id = str(doc_id or "")
        meta = next((d for d in self.r.documents() if d["doc_id"] == doc_id), None)
        if meta is None:
            raise BadRequest(f"no document {doc_id!r} in the index")
        text = self.r.document_text(doc_id)
        spans: list[tuple[int, int]] = []
        moved = gone = 0
        for pair in list(highlights or [])[:MAX_VIEW_HIGHLIGHTS]:
            try:
                s, e = int(pair[0]), int(pair[1])
                quoted = str(pair[2]) if len(pair) > 2 else None
            except (TypeError, ValueError, IndexError):
                continue
            if quoted is not None and text[s:e] != quoted:
                found = text.find(quoted) if quoted else -1
                if found < 0:
                    gone += 1
                    continue
                moved += 1
                s, e = found, found + len(quoted)
            if 0 <= s < e <= len(text):
                spans.append((s, e))
        return {"doc_id": doc_id, "title": meta.get("title") or doc_id, "text": text,
                "highlights": spans, "passages": meta["passages"], "moved": moved,
                "gone": gone}

    def delete(self, doc_id: Any) -> dict[str, Any]:
        """Remove one document from the index (and its file, if it was uploaded); BadRequest if
        there is none of that id."""
        doc_id = str(doc_id or "")
        if doc_id not in {d["doc_id"] for d in self.r.documents()}:
            raise BadRequest(f"no document {doc_id!r} in the index")
        report = remove_documents(self.r, [doc_id])
        info = self.r.info()
        return {"removed": list(report.removed), "documents": info["documents"],
                "passages": info["passages"]}

    def record_feedback(self, data: Any) -> dict[str, Any]:
        """Append feedback on an answer to ``<index>/feedback.jsonl`` (see :mod:`qa.feedback`)."""
        if not isinstance(data, dict):
            raise BadRequest("feedback must be an object")
        return feedback.record(self.r.index.path, data)

    def upload(self, paths: Sequence[Any] | None,
               progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Add uploaded files to the index (see :func:`qa.uploads.add_uploads`): unsupported,
        too large or unreadable files are named in ``skipped`` and change nothing."""
        received = [Received(Path(_path_of(p)).name, _path_of(p)) for p in (paths or []) if p]
        self._indexing = [f.name for f in received]
        try:
            out = add_uploads(self.r, received, progress=progress).to_json()
        finally:
            self._indexing = []
        out["message"] = upload_message(out)
        return out


def _path_of(item: Any) -> str:
    """A file path from what Gradio passes: a path, or a FileData-like dict or object."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if isinstance(item, dict):
        return str(item.get("path") or "")
    return str(getattr(item, "path", "") or "")


def discard_gradio_copies(items: Sequence[Any] | None) -> None:
    """Delete Gradio's temporary copies of uploaded files once the upload folder has its own:
    Gradio keeps them until the server stops, so a document deleted from the index lived on
    there. Only files inside Gradio's upload folder are touched."""
    from gradio.utils import get_upload_folder

    cache = Path(get_upload_folder()).resolve()
    for item in items or []:
        path = Path(_path_of(item))
        if path.name and cache in path.resolve().parents:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # the per-file folder Gradio made, if now empty
                path.parent.rmdir()


def plural(n: int, word: str) -> str:
    """``"1 passage"``, ``"1,204 passages"``."""
    return f"{n:,} {word}{'s' * (n != 1)}"


def upload_message(rep: dict[str, Any]) -> str:
    """One plain-text line per outcome (escaped when shown in HTML)."""
    lines = []
    if rep["added"]:
        n = len(rep["added"])
        lines.append(f"Added {n} document{'s' * (n != 1)}: {', '.join(rep['added'])}.")
    if rep["updated"]:
        lines.append(f"Updated: {', '.join(rep['updated'])}.")
    if rep["unchanged"]:
        lines.append(f"Already in the index, unchanged: {', '.join(rep['unchanged'])}.")
    for s in rep["skipped"]:
        lines.append(f"Could not add {s['file']}: {s['reason']}.")
    if rep["skipped"] and not (rep["added"] or rep["updated"]):
        lines.append("Nothing already in the index was changed.")
    if not lines:
        lines.append("No files received.")
    lines.append(f"The index holds {plural(rep['documents'], 'document')}, "
                 f"{plural(rep['passages'], 'passage')}.")
    return "\n".join(lines)
