"""What the chat can do with one index: ask, search, describe, upload, open and delete documents,
record feedback. Each method calls the library (``Retriever``, :mod:`qa.feedback`) and returns
plain data for the Gradio handlers and API endpoints; nothing here builds HTML.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import feedback
from ..api import discard_upload, safe_upload_name
from ..errors import BadRequest, QAError

DEFAULT_K = 5
MAX_UI_K = 20
MAX_API_K = 50
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_VIEW_HIGHLIGHTS = 50


def upload_dir_for(retriever: Any) -> Path:
    """Where uploads are kept: ``<index_dir>/uploads``."""
    return Path(retriever.index.path) / "uploads"


def as_k(k: Any, *, limit: int = MAX_API_K) -> int:
    """``k`` as a whole number in 1..limit (Gradio sends floats and strings); QAError if not."""
    if isinstance(k, float) and k.is_integer():
        k = int(k)
    if isinstance(k, str) and k.strip().isdigit():
        k = int(k.strip())
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limit:
        raise QAError(f"k must be a whole number between 1 and {limit}, got {k!r}")
    return k


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
    """The operations behind the chat and its Gradio API, on one Retriever."""

    def __init__(self, retriever: Any) -> None:
        self.r = retriever
        self._upload_lock = threading.Lock()
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

    def ask(self, question: str, k: Any = DEFAULT_K, *, history: Sequence[dict[str, str]] = (),
            limit: int = MAX_API_K) -> dict[str, Any]:
        """The answer dict; ``history`` (earlier ``{"question", "answer"}`` turns) is passed on
        when the retriever reads it."""
        k = as_k(k, limit=limit)
        if history and self._takes_history:
            answer = self.r.ask(question, k, history=list(history))
        else:
            answer = self.r.ask(question, k)
        return answer_payload(answer, self._doc_passages())

    def search(self, question: str, k: Any = DEFAULT_K) -> dict[str, Any]:
        passages = self.r.search(question, as_k(k))
        docs = self._doc_passages()
        return {"question": question, "passages": [passage_payload(p, docs) for p in passages]}

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.r.info())
        out["document_list"] = self.r.documents()
        return out

    def document(self, doc_id: Any, highlights: Any = ()) -> dict[str, Any]:
        """A whole document for the viewer: ``doc_id``, ``title``, ``text`` and the document
        spans to highlight (checked: at most 50 pairs of offsets inside the text)."""
        doc_id = str(doc_id or "")
        meta = next((d for d in self.r.documents() if d["doc_id"] == doc_id), None)
        if meta is None:
            raise BadRequest(f"no document {doc_id!r} in the index")
        text = self.r.document_text(doc_id)
        spans = []
        for pair in list(highlights or [])[:MAX_VIEW_HIGHLIGHTS]:
            try:
                s, e = int(pair[0]), int(pair[1])
            except (TypeError, ValueError, IndexError):
                continue
            if 0 <= s < e <= len(text):
                spans.append((s, e))
        return {"doc_id": doc_id, "title": meta.get("title") or doc_id, "text": text,
                "highlights": spans, "passages": meta["passages"]}

    def delete(self, doc_id: Any) -> dict[str, Any]:
        """Remove one document from the index (and its file, if it was uploaded); BadRequest if
        there is none of that id."""
        doc_id = str(doc_id or "")
        if doc_id not in {d["doc_id"] for d in self.r.documents()}:
            raise BadRequest(f"no document {doc_id!r} in the index")
        with self._upload_lock:
            source = self.r.snapshot().documents.get(doc_id, {}).get("source", "")
            report = self.r.remove([doc_id])
            if doc_id in report.removed:  # as DELETE /api/documents: an upload's file goes too
                discard_upload(source, upload_dir_for(self.r))
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
        """Copy uploaded files into the upload folder and add them to the index.

        Unsupported, too large or unreadable files are named in ``skipped`` and leave both the
        index and the upload folder as they were."""
        files = [_path_of(p) for p in (paths or []) if p]
        skipped: list[dict[str, str]] = []
        staged: list[tuple[str, Path, Path | None]] = []  # (shown name, saved file, backup)
        report: Any = None
        folder = upload_dir_for(self.r)
        with self._upload_lock:
            folder.mkdir(parents=True, exist_ok=True)
            taken: set[str] = set()
            for src in files:
                shown = Path(src).name
                try:  # the same rules as the HTTP API: type, and a name that stays in the folder
                    name = safe_upload_name(shown)
                except BadRequest as exc:
                    skipped.append({"file": shown, "reason": str(exc).removeprefix(f"{shown}: ")})
                    continue
                try:
                    size = os.path.getsize(src)
                except OSError as exc:
                    skipped.append({"file": shown, "reason": exc.strerror or str(exc)})
                    continue
                if size > MAX_UPLOAD_BYTES:
                    skipped.append({"file": shown, "reason": (
                        f"too large ({size / 2**20:.1f} MB; "
                        f"limit {MAX_UPLOAD_BYTES // 2**20} MB)")})
                    continue
                stem, suffix_ = Path(name).stem, Path(name).suffix
                n = 2
                while name in taken:
                    name = f"{stem}-{n}{suffix_}"
                    n += 1
                taken.add(name)
                target = folder / name
                if target.resolve().parent != folder.resolve():  # belt and braces
                    skipped.append({"file": shown, "reason": "invalid file name"})
                    continue
                backup = None
                if target.exists():
                    backup = folder / f".{name}.{uuid.uuid4().hex[:8]}.bak"
                    os.replace(target, backup)
                tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.part"
                shutil.copyfile(src, tmp)
                os.replace(tmp, target)
                staged.append((shown, target, backup))
            self._indexing = [shown for shown, _, _ in staged]
            try:
                if staged:
                    report = self.r.add([t for _, t, _ in staged], progress=progress)
            except BaseException:
                for _, target, backup in staged:
                    _restore(target, backup)
                raise
            finally:
                self._indexing = []
            unreadable = {str(s.path): s.reason for s in (report.skipped if report else [])}
            for shown, target, backup in staged:
                reason = unreadable.get(str(target))
                if reason is not None:
                    skipped.append({"file": shown, "reason": reason})
                    _restore(target, backup)
                elif backup is not None:
                    backup.unlink(missing_ok=True)
        info = self.r.info()
        out: dict[str, Any] = {
            "added": list(report.added) if report else [],
            "updated": list(report.updated) if report else [],
            "unchanged": list(report.unchanged) if report else [],
            "skipped": skipped,
            "documents": info["documents"],
            "passages": info["passages"],
        }
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


def _restore(target: Path, backup: Path | None) -> None:
    if backup is not None and backup.exists():
        os.replace(backup, target)
    else:
        target.unlink(missing_ok=True)


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
