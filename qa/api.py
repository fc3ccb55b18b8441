"""HTTP API: search, ask and manage documents, JSON in and out (``pip install 'qa-cite[api]'``).

Served by ``qa serve`` beside the web chat, or alone with ``qa serve --api-only``. FastAPI
publishes the OpenAPI description at ``/openapi.json`` and interactive docs at ``/docs``.
Limits (question length, ``k``, upload size and type) answer with 4xx and a one-line ``detail``.
"""


import contextlib
import inspect
import json
import os
import secrets
from typing import Any

from .conversation import MAX_FIELD_CHARS, MAX_TURNS
from .errors import BadRequest, IndexBusy, QAError, one_line
from .limits import DEFAULT_K, MAX_K, MAX_QUESTION_CHARS, check_k, clean_question
from .retriever import Retriever
from .uploads import MAX_UPLOAD_BYTES, Received, add_uploads, remove_documents

# Whole request bodies: an upload request (several files) and a question. Without a limit an
# upload of any size was spooled to disk before the 20 MiB check could refuse it.
MAX_UPLOAD_REQUEST_BYTES = 5 * MAX_UPLOAD_BYTES
MAX_QUERY_REQUEST_BYTES = 64 * 1024
# A full history: 20 turns of two 2,000-character fields, up to 4 bytes a character in UTF-8.
MAX_HISTORY_BYTES = MAX_TURNS * 2 * MAX_FIELD_CHARS * 4
# Uploads and deletes run one at a time on a thread of their own, never on the threads that answer
# questions; this many may wait their turn, further ones get 503 with Retry-After (#17.3: 46
# waiting uploads had taken every request thread, and /api/ask timed out for 50 s).
MAX_QUEUED_WRITES = 8
RETRY_AFTER_S = 5
UPDATE_NICENESS = 10


def create_app(retriever: Retriever, *, token: str | None = None, answerer: Any = None) -> Any:
    """A FastAPI app serving the API under ``/api``. With ``token`` (or ``$QA_API_TOKEN``), every
    request must send ``Authorization: Bearer TOKEN``. With ``answerer``
    (:class:`qa.generation.ModelAnswerer`) a language model writes the answers of ``/api/ask``."""
    from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

    token = token or os.environ.get("QA_API_TOKEN") or None

    class Query(BaseModel):
        # The rules are qa.limits' (the same for every surface); the schema only describes them.
        # A misspelt field ("hisotry") is refused, not ignored: its turns would be lost unseen.
        model_config = ConfigDict(extra="forbid")

        question: str = Field(..., description="the question, in any language the model reads",
                              json_schema_extra={"maxLength": MAX_QUESTION_CHARS})
        k: int = Field(DEFAULT_K, description="passages to return",
                       json_schema_extra={"minimum": 1, "maximum": MAX_K})
        stream: StrictBool = Field(False, description="answer as server-sent events (token events "
                             "while the model writes, then the answer object)")

        @field_validator("question", mode="after")
        @classmethod
        def _question(cls, v: str) -> str:
            return clean_question(v)

        @field_validator("k", mode="before")
        @classmethod
        def _k(cls, v: Any) -> int:
            return check_k(v)  # "3", 3.0, 1e1 and true are refused, not coerced

    # What the responses look like, for /openapi.json (client generators read it); the routes
    # return Answer.to_json() and friends, which these only describe. An error is always one
    # line in "detail": FastAPI's default schema said a list (found by an API tester).
    class ErrorOut(BaseModel):
        detail: str = Field(..., description="what was wrong, in one line")

    class PassageOut(BaseModel):
        rank: int
        doc_id: str
        title: str
        start: int = Field(..., description="offset of the passage in its document's text")
        end: int
        text: str = Field(..., description="the document's text[start:end]")
        score: float
        chunk_id: int
        cited: bool
        highlights: list[list[int]] = Field(..., description="[start, end] document offsets of "
                                                              "the sentences the answer cites")
        highlight_texts: list[str]

    class CitationOut(BaseModel):
        marker: int = Field(..., description="the [n] in the answer: the passage of rank n")
        doc_id: str
        start: int
        end: int
        text: str
        score: float

    class SentenceOut(BaseModel):
        text: str
        markers: list[int]
        supported: bool = Field(..., description="found in the passages it cites")

    class AnswerOut(BaseModel):
        question: str
        answer: str = Field(..., description="the sentences, each followed by its [n] markers")
        abstained: bool = Field(..., description="the documents do not answer the question")
        confidence: float = Field(..., description="the abstention model's estimate that the "
                                                   "documents answer it; abstained is the decision")
        mode: str = Field(..., description="'extractive' (quoted) or 'generated' (by a model)")
        model: str | None
        sentences: list[SentenceOut]
        notice: str | None = Field(..., description="why the answer fell back, if it did")
        history_used: list[int] = Field(..., description="the turns of history it was read with")
        rewritten_question: str | None
        citations: list[CitationOut]
        passages: list[PassageOut]

    class SearchOut(BaseModel):
        question: str
        passages: list[PassageOut]

    def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
        what = {400: "bad input", 401: "missing or wrong API token", 404: "no such document",
                413: "request too large", 422: "bad request shape or value",
                503: "too many updates waiting (see Retry-After)"}
        return {c: {"model": ErrorOut, "description": what[c]} for c in codes}

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
            # the index of a list item too: "history.4.answer" names the turn
            loc = [str(x) for x in err.get("loc", ())
                   if isinstance(x, (str, int)) and x != "body"]
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            where = ".".join(loc) or "body"
            parts.append(msg if msg.startswith(f"{where} ") else f"{where}: {msg}")
        return JSONResponse({"detail": one_line("; ".join(parts) or "invalid request")},
                            status_code=422)

    @app.exception_handler(BadRequest)
    async def _bad_request(_: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": one_line(exc)}, status_code=400)

    @app.exception_handler(IndexBusy)
    async def _busy(_: Request, exc: IndexBusy) -> JSONResponse:
        return JSONResponse({"detail": one_line(exc)}, status_code=503,
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
        return JSONResponse({"detail": one_line(exc)}, status_code=500)

    auth = [Depends(check_token)]
    # Older FastAPI has no per-route body limit; there the upload size is checked after reading.
    has_limit = "max_body_size" in inspect.signature(app.post).parameters

    def body_limit(n: int) -> dict[str, Any]:
        return {"max_body_size": n} if has_limit else {}

    @app.get("/api/health", tags=["meta"])
    async def health() -> dict[str, str]:  # async: never waits for a thread
        return {"status": "ok"}

    @app.get("/api/info", tags=["meta"], dependencies=auth, responses=errors(401))
    def info() -> dict[str, Any]:
        """Index contents: documents, passages, model."""
        return retriever.info()

    @app.post("/api/search", tags=["retrieval"], dependencies=auth,
              responses={200: {"model": SearchOut}, **errors(400, 401, 413, 422)},
              **body_limit(MAX_QUERY_REQUEST_BYTES))
    def search(q: Query) -> dict[str, Any]:
        """The ``k`` best passages for the question."""
        answer = retriever.ask(q.question, q.k)
        return {"question": answer.question, "passages": [p.to_json() for p in answer.passages]}

    class Turn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        question: str = Field(..., max_length=MAX_FIELD_CHARS)
        answer: str = Field(..., max_length=MAX_FIELD_CHARS)

    class AskQuery(Query):
        history: list[Turn] = Field(
            default_factory=list, max_length=MAX_TURNS,
            description="earlier turns of the conversation, oldest first; a follow-up is read "
                        "with the turn it leans on (see history_used in the answer)")

    @app.post("/api/ask", tags=["retrieval"], dependencies=auth,
              responses={200: {"model": AnswerOut, "content": {"text/event-stream": {
                  "schema": {"type": "string", "description": "with stream: true, events "
                             "'token' (text), 'rewrite' (the question searched) and 'answer' "
                             "(this object)"}}}}, **errors(400, 401, 413, 422)},
              **body_limit(MAX_QUERY_REQUEST_BYTES + MAX_HISTORY_BYTES))
    def ask(q: AskQuery) -> Any:
        """An answer whose ``[n]`` markers cite passage ``rank`` n; ``abstained`` when the
        documents do not support one. With ``"stream": true``, server-sent events: ``token``
        while a language model writes, then ``answer`` with this same object. ``history``: the
        earlier turns; ``history_used`` in the answer says which the question was read with."""
        return _ask(retriever, answerer, q)

    @app.get("/api/documents", tags=["documents"], dependencies=auth)
    def documents() -> list[dict[str, Any]]:
        return retriever.documents()

    @app.get("/api/documents/{doc_id:path}", tags=["documents"], dependencies=auth,
             responses=errors(401, 404))
    def document(doc_id: str) -> dict[str, Any]:
        """One document's whole text (what passage and citation offsets refer to), as the
        chat's document viewer shows it."""
        meta = next((d for d in retriever.documents() if d["doc_id"] == doc_id), None)
        if meta is None:
            raise HTTPException(404, f"no document {doc_id!r} in the index")
        return {**meta, "text": retriever.document_text(doc_id)}

    @app.post("/api/documents", tags=["documents"], dependencies=auth,
              responses=errors(400, 401, 413, 422, 503), **body_limit(MAX_UPLOAD_REQUEST_BYTES))
    async def add_documents(files: list[UploadFile] = File(...)) -> dict[str, Any]:  # noqa: B008
        """Upload documents (.txt, .md, .html, .pdf; 20 MiB each) into the index. One file of
        an unsupported type or over the limit refuses the request (400), changing nothing; 503
        with ``Retry-After`` when too many updates are waiting."""
        received = [Received(f.filename or "", f.file) for f in files]
        report = await in_write_queue(lambda: add_uploads(retriever, received, strict=True))
        return report.to_json()  # type: ignore[no-any-return]

    @app.delete("/api/documents/{doc_id:path}", tags=["documents"], dependencies=auth,
                responses=errors(401, 404, 503))
    async def remove_document(doc_id: str) -> dict[str, Any]:
        """Remove a document from the index. 503 with ``Retry-After`` when too many updates are
        waiting."""
        if doc_id not in {d["doc_id"] for d in retriever.documents()}:
            raise HTTPException(404, f"no document {doc_id!r} in the index")
        report = await in_write_queue(lambda: remove_documents(retriever, [doc_id]))
        info = retriever.info()  # the counts, as an upload's answer has them
        return {**report.to_json(), "documents": int(info["documents"]),
                "passages": int(info["passages"])}

    app.add_middleware(JsonTooLarge)
    return app


class JsonTooLarge:
    """Starlette's body limit answers 413 in plain text; every other error of this API is JSON
    with a one-line ``detail`` (found by an API tester), so this one is too."""

    BODY = json.dumps({"detail": f"request body too large (a question is at most "
                                 f"{MAX_QUESTION_CHARS} characters with its history, an upload "
                                 f"at most {MAX_UPLOAD_BYTES // 2**20} MiB a file)"}).encode()

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rewriting = False

        async def send_json(message: dict[str, Any]) -> None:
            nonlocal rewriting
            if message["type"] == "http.response.start" and message["status"] == 413:
                types = [v for k, v in message.get("headers", []) if k.lower() == b"content-type"]
                rewriting = not types or types[0].startswith(b"text/plain")
                if rewriting:
                    message = {**message, "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(self.BODY)).encode())]}
            elif message["type"] == "http.response.body" and rewriting:
                if message.get("more_body"):
                    return  # the plain text's remaining parts are dropped
                message = {**message, "body": self.BODY}
            await send(message)

        await self.app(scope, receive, send_json)


def _ask(retriever: Retriever, answerer: Any, q: Any) -> Any:
    from .generation.stream import MEDIA_TYPE, sse_stream

    history = [dict(t) if isinstance(t, dict) else t.model_dump()
               for t in getattr(q, "history", None) or []]
    if answerer is None:
        answer = retriever.ask(q.question, q.k, history=history)
        if not q.stream:
            return answer.to_json()
        from .generation.answerer import StreamEvent

        events: Any = iter([StreamEvent("answer", answer=answer)])
    elif not q.stream:
        return answerer.ask(q.question, q.k, history).to_json()
    else:
        events = answerer.stream(q.question, q.k, history)
    from fastapi.responses import StreamingResponse

    return StreamingResponse(sse_stream(events), media_type=MEDIA_TYPE,
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


def _lower_priority() -> None:
    """Run the calling thread, and the threads it starts (the model's workers), at a lower CPU
    priority: updates then take the CPU that questions leave. Linux keeps a nice value per thread
    and new threads inherit it; elsewhere, or when not allowed, nothing changes."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, UPDATE_NICENESS)

