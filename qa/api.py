"""HTTP API: search, ask and manage documents, JSON in and out (``pip install 'qa-cite[api]'``).

Served by ``qa serve`` beside the web chat, or alone with ``qa serve --api-only``. FastAPI
publishes the OpenAPI description at ``/openapi.json`` and interactive docs at ``/docs``.
Limits (question length, ``k``, upload size and type) answer with 4xx and a one-line ``detail``.
"""


import contextlib
import inspect
import os
import re
import secrets
import shutil
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from .documents import SUPPORTED_SUFFIXES
from .errors import BadRequest, IndexBusy, QAError
from .retriever import DEFAULT_K, MAX_K, MAX_QUESTION_CHARS, Retriever

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# Whole request bodies: an upload request (several files) and a question. Without a limit an
# upload of any size was spooled to disk before the 20 MiB check could refuse it.
MAX_UPLOAD_REQUEST_BYTES = 5 * MAX_UPLOAD_BYTES
MAX_QUERY_REQUEST_BYTES = 64 * 1024
MAX_NAME_BYTES = 200  # file systems allow 255 bytes; leave room for temporary suffixes
# Uploads and deletes run one at a time on a thread of their own, never on the threads that answer
# questions; this many may wait their turn, further ones get 503 with Retry-After (#17.3: 46
# waiting uploads had taken every request thread, and /api/ask timed out for 50 s).
MAX_QUEUED_WRITES = 8
RETRY_AFTER_S = 5
UPDATE_NICENESS = 10


def _one_line(text: str) -> str:
    """``text`` on one line and encodable (lone surrogates from a client become "?")."""
    text = " ".join(str(text).split())
    return text.encode("utf-8", "replace").decode("utf-8")


def safe_upload_name(name: str) -> str:
    """A file name that cannot leave the upload folder: basename only, no leading dots,
    no control, format (bidi, zero-width) or path characters, at most 200 bytes with its type
    kept; BadRequest for unsupported types."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(
        "_" if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") else ch for ch in base
    )
    base = re.sub(r"[:*?\"<>|]", "_", base).lstrip(". ").strip()
    if not base:
        raise BadRequest("upload has no usable file name")
    if not base.lower().endswith(SUPPORTED_SUFFIXES):
        suffix = os.path.splitext(base)[1].lower() or "(none)"
        raise BadRequest(
            f"{base}: unsupported file type {suffix!r}; supported: "
            + ", ".join(SUPPORTED_SUFFIXES)
        )
    stem, dot, suffix = base.rpartition(".")
    while len(base.encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
        base = f"{stem}{dot}{suffix}"
    return base


def store_upload(data: bytes, name: str, upload_dir: Path) -> Path:
    """Write an uploaded file into ``upload_dir`` under a safe name (atomically)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadRequest(f"{name}: too large (more than {MAX_UPLOAD_BYTES // 2**20} MiB)")
    upload_dir.mkdir(parents=True, exist_ok=True)
    target = upload_dir / safe_upload_name(name)
    if target.resolve().parent != upload_dir.resolve():
        raise BadRequest(f"{name}: invalid file name")
    fd, tmp = tempfile.mkstemp(dir=upload_dir, prefix=".upload-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, target)
    return target


def discard_upload(source: str, upload_dir: Path) -> None:
    """Delete a removed document's file if it is in the upload folder (an upload's only copy
    lived on there after DELETE); a document indexed from anywhere else is never touched."""
    path = Path(source)
    if source and path.parent.resolve() == upload_dir.resolve() and path.is_file():
        path.unlink(missing_ok=True)


def upload_dir_for(retriever: Retriever) -> Path:
    return retriever.index.path / "uploads"


def create_app(retriever: Retriever, *, token: str | None = None) -> Any:
    """A FastAPI app serving the API under ``/api``. With ``token`` (or ``$QA_API_TOKEN``), every
    request must send ``Authorization: Bearer TOKEN``."""
    from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field, field_validator

    token = token or os.environ.get("QA_API_TOKEN") or None

    class Query(BaseModel):
        question: str = Field(..., max_length=MAX_QUESTION_CHARS,
                              description="the question, in any language the model reads")
        k: int = Field(DEFAULT_K, ge=1, le=MAX_K, description="passages to return")

        @field_validator("k", mode="before")
        @classmethod
        def _no_bool(cls, v: Any) -> Any:
            if isinstance(v, bool):  # JSON true is not a number of passages
                raise ValueError("Input should be a valid integer, not true or false")
            return v

    def check_token(request: Request) -> None:
        if token is None:
            return
        sent = request.headers.get("authorization", "")
        if not secrets.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong API token (Authorization: Bearer ...)")

    app = FastAPI(
        title="qa",
        description="Cross-lingual question answering over your documents, with citations.",
        version="1",
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # One line, and never the input echoed back (it may hold lone surrogates that JSON
        # cannot encode, which made the default handler fail with a 500).
        parts = []
        for err in exc.errors()[:5]:
            loc = [str(x) for x in err.get("loc", ()) if isinstance(x, str) and x != "body"]
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            parts.append(f"{'.'.join(loc) or 'body'}: {msg}")
        return JSONResponse({"detail": _one_line("; ".join(parts) or "invalid request")},
                            status_code=422)

    @app.exception_handler(BadRequest)
    async def _bad_request(_: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": _one_line(str(exc))}, status_code=400)

    @app.exception_handler(IndexBusy)
    async def _busy(_: Request, exc: IndexBusy) -> JSONResponse:
        return JSONResponse({"detail": _one_line(str(exc))}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_S)})

    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    write_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qa-update",
                                      initializer=_lower_priority)
    queued_writes = 0

    async def in_write_queue(work: Any) -> Any:
        nonlocal queued_writes
        if queued_writes >= MAX_QUEUED_WRITES:
            raise IndexBusy(f"the index is busy with {queued_writes} other updates; retry in "
                            f"{RETRY_AFTER_S} seconds")
        queued_writes += 1  # the event loop runs one request at a time: no race here
        try:
            return await asyncio.get_running_loop().run_in_executor(write_thread, work)
        finally:
            queued_writes -= 1

    @app.exception_handler(QAError)
    async def _qa_error(_: Request, exc: QAError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(str(exc))}, status_code=500)

    auth = [Depends(check_token)]
    # Older FastAPI has no per-route body limit; there the upload size is checked after reading.
    has_limit = "max_body_size" in inspect.signature(app.post).parameters

    def body_limit(n: int) -> dict[str, Any]:
        return {"max_body_size": n} if has_limit else {}

    @app.get("/api/health", tags=["meta"])
    async def health() -> dict[str, str]:  # async: never waits for a thread
        return {"status": "ok"}

    @app.get("/api/info", tags=["meta"], dependencies=auth)
    def info() -> dict[str, Any]:
        """Index contents: documents, passages, model."""
        return retriever.info()

    @app.post("/api/search", tags=["retrieval"], dependencies=auth,
              **body_limit(MAX_QUERY_REQUEST_BYTES))
    def search(q: Query) -> dict[str, Any]:
        """The ``k`` best passages for the question."""
        answer = retriever.ask(q.question, q.k)
        return {"question": answer.question, "passages": [p.to_json() for p in answer.passages]}

    @app.post("/api/ask", tags=["retrieval"], dependencies=auth,
              **body_limit(MAX_QUERY_REQUEST_BYTES))
    def ask(q: Query) -> dict[str, Any]:
        """An answer whose ``[n]`` markers cite passage ``rank`` n; ``abstained`` when the
        documents do not support one."""
        return retriever.ask(q.question, q.k).to_json()

    @app.get("/api/documents", tags=["documents"], dependencies=auth)
    def documents() -> list[dict[str, Any]]:
        return retriever.documents()

    @app.get("/api/documents/{doc_id:path}", tags=["documents"], dependencies=auth)
    def document(doc_id: str) -> dict[str, Any]:
        """One document's whole text (what passage and citation offsets refer to), as the
        chat's document viewer shows it."""
        meta = next((d for d in retriever.documents() if d["doc_id"] == doc_id), None)
        if meta is None:
            raise HTTPException(404, f"no document {doc_id!r} in the index")
        return {**meta, "text": retriever.document_text(doc_id)}

    @app.post("/api/documents", tags=["documents"], dependencies=auth,
              **body_limit(MAX_UPLOAD_REQUEST_BYTES))
    async def add_documents(files: list[UploadFile] = File(...)) -> dict[str, Any]:  # noqa: B008
        """Upload documents (.txt, .md, .html, .pdf; 20 MiB each) into the index. 503 with
        ``Retry-After`` when too many updates are waiting."""
        return await in_write_queue(lambda: _add(files))  # type: ignore[no-any-return]

    def _add(files: list[Any]) -> dict[str, Any]:
        staging = Path(tempfile.mkdtemp(prefix="qa-upload-"))
        try:
            saved = []
            for f in files:
                data = f.file.read(MAX_UPLOAD_BYTES + 1)
                saved.append(store_upload(data, f.filename or "", staging))
            final_dir = upload_dir_for(retriever)
            final_dir.mkdir(parents=True, exist_ok=True)
            targets = []
            for p in dict.fromkeys(saved):  # two files of one name: the last one wins
                shutil.move(str(p), final_dir / p.name)
                targets.append(final_dir / p.name)
            report = retriever.add(targets)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return _report(report)

    @app.delete("/api/documents/{doc_id:path}", tags=["documents"], dependencies=auth)
    async def remove_document(doc_id: str) -> dict[str, Any]:
        """Remove a document from the index. 503 with ``Retry-After`` when too many updates are
        waiting."""
        if doc_id not in {d["doc_id"] for d in retriever.documents()}:
            raise HTTPException(404, f"no document {doc_id!r} in the index")
        return await in_write_queue(lambda: _remove(doc_id))  # type: ignore[no-any-return]

    def _remove(doc_id: str) -> dict[str, Any]:
        source = retriever.snapshot().documents.get(doc_id, {}).get("source", "")
        report = retriever.remove([doc_id])
        if doc_id in report.removed:
            discard_upload(source, upload_dir_for(retriever))
        return _report(report)

    return app


def _lower_priority() -> None:
    """Run the calling thread, and the threads it starts (the model's workers), at a lower CPU
    priority: updates then take the CPU that questions leave. Linux keeps a nice value per thread
    and new threads inherit it; elsewhere, or when not allowed, nothing changes."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, UPDATE_NICENESS)


def _report(report: Any) -> dict[str, Any]:
    return {
        "added": report.added,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "removed": report.removed,
        "skipped": [{"file": Path(s.path).name, "reason": s.reason} for s in report.skipped],
    }
