"""``qa mcp``: the index as Model Context Protocol tools, served over stdio
(``pip install 'qa-cite[mcp]'``).

An AI assistant or editor that speaks MCP starts ``qa mcp --index DIR`` and gets two tools:

- ``search(question, k)``: the ``k`` passages that best match, each with its document id, character
  offsets in the document, text and score;
- ``ask(question, k, history)``: a cited answer (``[n]`` markers pointing at passage rank ``n``),
  or an abstention when the documents do not answer, with the passages it rests on; ``history``
  (optional) holds the earlier turns, as ``POST /api/ask`` takes them.

Bad arguments come back as a tool error (``isError``) with one line saying what was wrong; the
server keeps running. Nothing but protocol messages is written to stdout.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.server.mcpserver.tools import Tool
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "qa mcp needs the MCP Python SDK, which is not installed: pip install 'qa-cite[mcp]'"
    ) from exc

from pydantic import BaseModel, ConfigDict, Field

from .conversation import MAX_FIELD_CHARS, MAX_TURNS
from .errors import QAError
from .limits import DEFAULT_K, MAX_K, MAX_QUESTION_CHARS
from .retriever import Retriever

ArgModel = TypeVar("ArgModel", bound=BaseModel)
Question = Annotated[
    str,
    Field(description="The question, in any language the documents' model reads (e.g. English "
                      "or German); the documents may be in another language.",
          min_length=1, max_length=MAX_QUESTION_CHARS),
]
# strict: "3", 3.0 and true are refused, as by every other surface (qa.limits.check_k)
K = Annotated[int, Field(description="How many passages to retrieve.", ge=1, le=MAX_K,
                         strict=True)]


class HistoryTurn(BaseModel):
    """One earlier turn of the conversation."""

    model_config = ConfigDict(extra="forbid")
    question: str = Field(description="An earlier question.", max_length=MAX_FIELD_CHARS)
    answer: str = Field(description="The answer it got ('answer' of that ask).",
                        max_length=MAX_FIELD_CHARS)


History = Annotated[
    list[HistoryTurn] | None,
    Field(description="Earlier turns of the conversation, oldest first (at most 20), so that a "
                      "follow-up such as 'And who brokered it?' is read with the question it "
                      "leans on; 'history_used' in the result names the turns used.",
          max_length=MAX_TURNS),
]

SEARCH_HELP = (
    "Search the indexed documents for passages relevant to a question. Returns the k best "
    "passages, best first, each with doc_id (the document), start/end (character offsets in that "
    "document), text and score (cosine-based, higher is better). Use it to find material to read "
    "or quote; cite passages by doc_id and offsets."
)
ASK_HELP = (
    "Answer a question from the indexed documents. Returns 'answer': sentences quoted from the "
    "documents, each followed by a marker [n] that refers to the passage with rank n in "
    "'passages' (with doc_id, offsets and text, so every claim can be checked); 'abstained' is "
    "true when the documents do not answer the question, and then 'answer' says so instead of "
    "guessing. Prefer this over search when the user wants an answer with sources."
)


def build_server(retriever: Retriever) -> MCPServer:
    """An MCP server whose ``search`` and ``ask`` tools query ``retriever``."""

    def search(question: Question, k: K = DEFAULT_K) -> dict[str, Any]:
        try:
            passages = retriever.search(question, k)
        except QAError as exc:
            raise ToolError(str(exc)) from exc
        return {"question": question, "passages": [p.to_json() for p in passages]}

    def ask(question: Question, k: K = DEFAULT_K, history: History = None) -> dict[str, Any]:
        try:
            turns = [t.model_dump() for t in history or []]
            return retriever.ask(question, k, history=turns).to_json()
        except QAError as exc:
            raise ToolError(str(exc)) from exc

    tools = [Tool.from_function(search, name="search", description=SEARCH_HELP),
             Tool.from_function(ask, name="ask", description=ASK_HELP)]
    for tool in tools:
        tool.fn_metadata.arg_model = _refusing_unknown(tool.fn_metadata.arg_model)
    return MCPServer(
        name="qa",
        log_level="WARNING",  # stderr is the client's log: no per-request chatter
        instructions="Cited question answering over a document collection: use 'ask' for an "
                     "answer with sources, 'search' for the raw passages.",
        tools=tools,
    )


def _refusing_unknown(model: type[ArgModel]) -> type[ArgModel]:
    """A tool's argument model that refuses arguments it does not know, as the HTTP API does
    (found by an API tester: ``{"question": ..., "bogus": 1}`` was taken, a misspelt
    ``"histroy"`` would have been dropped unseen)."""
    config = ConfigDict(**{**model.model_config, "extra": "forbid"})
    strict: type[ArgModel] = type(model.__name__, (model,), {"model_config": config})
    return strict


def serve(retriever: Retriever) -> None:
    """Serve ``retriever`` over stdio until the client closes the connection."""
    build_server(retriever).run("stdio")
