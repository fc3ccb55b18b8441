"""The web chat (``qa serve``): a Gradio app mounted beside the HTTP API.

Importing ``qa.ui`` loads neither gradio nor the model; ``build_app`` and ``serve`` import them when
called (``pip install 'qa-cite[web,api]'``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_app", "serve"]


def build_app(retriever: Any) -> Any:
    """The Gradio Blocks of the chat (see :func:`qa.ui.app.build_app`)."""
    from .app import build_app as _build

    return _build(retriever)


def serve(index: str | None = None, host: str = "127.0.0.1", port: int = 7860,
          api_only: bool = False) -> None:
    """Serve the chat and the API (see :func:`qa.ui.server.serve`)."""
    from .server import serve as _serve

    _serve(index=index, host=host, port=port, api_only=api_only)
