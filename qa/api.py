"""HTTP API: search, ask and manage documents, JSON in and out (``pip install 'qa-cite[api]'``).

Served by ``qa serve`` beside the web chat, or alone with ``qa serve --api-only``. FastAPI
publishes the OpenAPI description at ``/openapi.json`` and interactive docs at ``/docs``.
Limits (question length, ``k``, upload size and type) answer with 4xx and a one-line ``detail``.
"""


import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .documents import SUPPORTED_SUFFIXES
from .errors import BadRequest, IndexBusy, QAError
from .retriever import DEFAULT_K, MAX_K, MAX_QUESTION_CHARS, Retriever

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def safe_upload_name(name: str) -> str:
    """A file name that cannot leave the upload folder: basename only, no leading dots,
    no control or path characters; BadRequest for unsupported types."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[\x00-\x1f\x7f:*?\"<>|]", "_", base).lstrip(". ").strip()
    if not base:
        raise BadRequest("upload has no usable file name")
    if not base.lower().endswith(SUPPORTED_SUFFIXES):
        raise BadRequest(
            f"{base}: unsupported file type; supported: " + ", ".join(SUPPORTED_SUFFIXES)
        )
    return base[:200]


def store_upload(data: bytes, name: str, upload_dir: Path) -> Path:
    """Write an uploaded file into ``upload_dir`` under a safe name (atomically)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadRequest(f"{name}: too large ({len(data) // 2**20} MiB; limit "
                         f"{MAX_UPLOAD_BYTES // 2**20} MiB)")
    upload_dir.mkdir(parents=True, exist_ok=True)
    target = upload_dir / safe_upload_name(name)
    if target.resolve().parent != upload_dir.resolve():
        raise BadRequest(f"{name}: invalid file name")
    fd, tmp = tempfile.mkstemp(dir=upload_dir, prefix=".upload-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, target)
    return target


def upload_dir_for(retriever: Retriever) -> Path:
    return retriever.index.path / "uploads"


def create_app(retriever: Retriever, *, token: str | None = None) -> Any:
    """A FastAPI app serving the API under ``/api``. With ``token`` (or ``$QA_API_TOKEN``), every
    request must send ``Authorization: Bearer TOKEN``."""
    from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field

    token = token or os.environ.get("QA_API_TOKEN") or None

    class Query(BaseModel):
        question: str = Field(..., max_length=MAX_QUESTION_CHARS,
                              description="the question, in any language the model reads")
        k: int = Field(DEFAULT_K, ge=1, le=MAX_K, description="passages to return")

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

    @app.exception_handler(BadRequest)
    async def _bad_request(_: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(IndexBusy)
    async def _busy(_: Request, exc: IndexBusy) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(QAError)
    async def _qa_error(_: Request, exc: QAError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=500)

    auth = [Depends(check_token)]

    @app.get("/api/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/info", tags=["meta"], dependencies=auth)
    def info() -> dict[str, Any]:
        """Index contents: documents, passages, model."""
        return retriever.info()

    @app.post("/api/search", tags=["retrieval"], dependencies=auth)
    def search(q: Query) -> dict[str, Any]:
        """The ``k`` best passages for the question."""
        answer = retriever.ask(q.question, q.k)
        return {"question": answer.question, "passages": [p.to_json() for p in answer.passages]}

    @app.post("/api/ask", tags=["retrieval"], dependencies=auth)
    def ask(q: Query) -> dict[str, Any]:
        """An answer whose ``[n]`` markers cite passage ``rank`` n; ``abstained`` when the
        documents do not support one."""
        answer = retriever.ask(q.question, q.k)
        out = answer.to_json()
        out["confidence"] = round(answer.confidence, 4)
        out["citations"] = [
            {"marker": c.marker, "doc_id": c.doc_id, "start": c.start, "end": c.end,
             "text": c.text}
            for c in answer.citations
        ]
        return out

    @app.get("/api/documents", tags=["documents"], dependencies=auth)
    def documents() -> list[dict[str, Any]]:
        return retriever.documents()

    @app.post("/api/documents", tags=["documents"], dependencies=auth)
    def add_documents(files: list[UploadFile] = File(...)) -> dict[str, Any]:  # noqa: B008
        """Upload documents (.txt, .md, .html, .pdf; 20 MiB each) into the index."""
        staging = Path(tempfile.mkdtemp(prefix="qa-upload-"))
        try:
            saved = []
            for f in files:
                data = f.file.read(MAX_UPLOAD_BYTES + 1)
                saved.append(store_upload(data, f.filename or "", staging))
            final_dir = upload_dir_for(retriever)
            final_dir.mkdir(parents=True, exist_ok=True)
            targets = []
            for p in saved:
                shutil.move(str(p), final_dir / p.name)
                targets.append(final_dir / p.name)
            report = retriever.add(targets)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return _report(report)

    @app.delete("/api/documents/{doc_id:path}", tags=["documents"], dependencies=auth)
    def remove_document(doc_id: str) -> dict[str, Any]:
        if doc_id not in {d["doc_id"] for d in retriever.documents()}:
            raise HTTPException(404, f"no document {doc_id!r} in the index")
        return _report(retriever.remove([doc_id]))

    return app


def _report(report: Any) -> dict[str, Any]:
    return {
        "added": report.added,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "removed": report.removed,
        "skipped": [{"file": Path(s.path).name, "reason": s.reason} for s in report.skipped],
    }
