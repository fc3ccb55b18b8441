"""``qa serve``: the web chat and the HTTP API on one port, run by uvicorn.

The FastAPI app of :mod:`qa.api` serves ``/api/...``; the Gradio chat is mounted on it at ``/``.
Binding to anything but a loopback address needs ``QA_AUTH=user:password``: the chat then asks
for that login and the ``/api`` routes for the same credentials (HTTP Basic), unless the API has its
own token (``QA_API_TOKEN``). With ``QA_API_TOKEN`` set, the chat and its Gradio API need it too
(``Authorization: Bearer TOKEN``, or the token as the password of the browser's login prompt),
unless ``QA_AUTH`` gives the chat its own login.
"""

from __future__ import annotations

import base64
import importlib.util
import ipaddress
import json
import os
import secrets
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..errors import QAError
from ..uploads import MAX_UPLOAD_BYTES

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``QA_AUTH`` as ``(user, password)``; None when unset; QAError when malformed."""
    if value is None or value == "":
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise QAError("QA_AUTH must look like user:password (both parts non-empty)")
    return user, password


def check_host(host: str, auth: tuple[str, str] | None, token: str | None = None) -> None:
    """Refuse to expose the index beyond this machine without a login (``QA_AUTH``) or a token
    (``QA_API_TOKEN``, which every route then needs, the chat included)."""
    if not is_loopback(host) and auth is None and not token:
        raise QAError(
            f"refusing to serve on {host or 'all interfaces'} without a login: set "
            "QA_AUTH=user:password or QA_API_TOKEN, or keep the default --host 127.0.0.1"
        )


def _check_port_free(host: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise QAError(f"--port must be a port number from 1 to 65535, got {port}")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host.strip("[]"), port))
        except socket.gaierror as exc:  # the name, not the port, is what is wrong
            raise QAError(f"cannot listen on --host {host!r}: not an address or a known host "
                          "name (e.g. 127.0.0.1, ::1, 0.0.0.0)") from exc
        except OSError as exc:
            raise QAError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port"
            ) from exc


async def _refuse(send: Any, detail: str, *, realm: str) -> None:
    """A 401 with a one-line JSON ``detail`` and the login prompt's realm, as qa.api answers."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"),
        (b"www-authenticate", f'Basic realm="{realm}"'.encode()),
        (b"content-length", str(len(body)).encode()),
    ]})
    await send({"type": "http.response.body", "body": body})


class BasicAuthGuard:
    """ASGI wrapper: paths under ``/api`` need HTTP Basic credentials (``/api/health`` is open)."""

    def __init__(self, app: Any, user: str, password: str) -> None:
        self.app = app
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._expected = f"Basic {token}".encode()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        guarded = (path == "/api" or path.startswith("/api/")) and path != "/api/health"
        if scope.get("type") == "http" and guarded:
            sent = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not secrets.compare_digest(sent, self._expected):
                await _refuse(send, "login required (HTTP Basic, the QA_AUTH credentials)",
                              realm="qa")
                return
        await self.app(scope, receive, send)


# Open under every login: a health check, and FastAPI's description of the API (no data).
_OPEN_PATHS = {"/api/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}


class TokenGuard:
    """ASGI wrapper for ``QA_API_TOKEN`` without ``QA_AUTH``: every route but ``/api/health`` and
    the API's description (``/docs``, ``/openapi.json``) needs the token. ``/api`` takes
    ``Authorization: Bearer TOKEN`` (checked again by :mod:`qa.api`); the chat and its Gradio API
    (``/gradio_api/...``: uploads, events, files) also take HTTP Basic with the token as the
    password, so that a browser can show its login prompt. Without this the token guarded
    ``/api`` while ``/gradio_api/call/ask`` and ``/gradio_api/upload`` stayed open."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._bearer = f"Bearer {token}".encode()
        self._token = token.encode()

    def _allowed(self, path: str, sent: bytes) -> bool:
        if secrets.compare_digest(sent, self._bearer):
            return True
        if path == "/api" or path.startswith("/api/"):
            return False
        scheme, _, encoded = sent.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            _, _, password = base64.b64decode(encoded, validate=True).partition(b":")
        except ValueError:
            return False
        return secrets.compare_digest(password, self._token)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope.get("type") in ("http", "websocket") and path not in _OPEN_PATHS:
            sent = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not self._allowed(path, sent):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await _refuse(send, "missing or wrong API token (Authorization: Bearer ..., or "
                              "the token as the login password)",
                              realm="qa (password: the API token)")
                return
        await self.app(scope, receive, send)


def _require_server_packages(api_only: bool) -> None:
    """One line naming the extra to install when a package ``qa serve`` needs is missing (the
    HTTP API is part of qa; FastAPI and uvicorn, which serve it, are an extra)."""
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise QAError("serving needs FastAPI and uvicorn: pip install 'qa-cite[web,api]'")
    if not api_only and importlib.util.find_spec("gradio") is None:
        raise QAError("the web chat needs gradio: pip install 'qa-cite[web]' (or use --api-only)")


def create_server_app(
    retriever: Any, *, auth: tuple[str, str] | None = None, api_only: bool = False,
    answerer: Any = None,
) -> Any:
    """The ASGI app ``qa serve`` runs: the API, with the chat mounted at ``/`` unless
    ``api_only``; with ``auth``, the chat asks for a login and ``/api`` for HTTP Basic. With
    ``answerer`` (:class:`qa.generation.ModelAnswerer`) a language model writes the answers."""
    from ..api import create_app

    if api_only:
        app: Any = create_app(retriever, answerer=answerer)
    else:
        import gradio as gr

        from .app import build_app, mount_kwargs

        demo = build_app(retriever, answerer=answerer)
        app = gr.mount_gradio_app(
            create_app(retriever, answerer=answerer),
            demo,
            path="/",
            auth=auth,
            auth_message="Sign in to ask questions of this document collection.",
            max_file_size=MAX_UPLOAD_BYTES,
            footer_links=["api"],
            run_history=False,
            # Only gr.Error messages (ours, one line) reach a client, never other exceptions'.
            show_error=False,
            **mount_kwargs(),
        )
        # Gradio checks that a file named in an event's input was uploaded through it only once
        # its Blocks "has launched" (gradio 6.31, processing_utils._check_allowed), which
        # mount_gradio_app never records: any client could have the chat index any server file
        # by naming its path. Mounted and served, it is launched.
        demo.has_launched = True
    token = os.environ.get("QA_API_TOKEN")
    if auth is not None and not token:
        app = BasicAuthGuard(app, *auth)
    elif token and auth is None and not api_only:
        app = TokenGuard(app, token)
    return app


def _open_retriever(index: str | None) -> Any:
    from ..retriever import Retriever, default_index_dir, open_default

    if index:
        return Retriever.load(index)
    from ..index.storage import IndexDir

    if IndexDir(default_index_dir()).exists():
        return open_default()
    print("qa: building the sample-corpus index (first start, about a minute)...",
          file=sys.stderr, flush=True)
    shown = [-1]

    def progress(done: int, total: int) -> None:
        pct = int(100 * done / total) if total else 100
        if pct // 10 != shown[0]:
            shown[0] = pct // 10
            print(f"qa:   embedded {done}/{total} texts ({pct}%)", file=sys.stderr, flush=True)

    r = open_default(progress=progress)
    print(f"qa: index ready in {default_index_dir()}", file=sys.stderr, flush=True)
    return r


def serve(index: str | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          api_only: bool = False, *, milvus: str | None = None, collection: str = "qa",
          llm: Any = None) -> None:
    """Serve until interrupted. Errors a user can fix raise QAError with a one-line message.
    ``milvus=URI`` serves the index in that Milvus collection (no local index files); ``llm``
    (:class:`qa.generation.LLMSettings`) has a language model write the answers."""
    auth = parse_auth(os.environ.get("QA_AUTH"))
    check_host(host, auth, os.environ.get("QA_API_TOKEN"))
    _require_server_packages(api_only)
    import uvicorn

    _check_port_free(host, port)
    if milvus:
        from ..retriever import Retriever

        retriever = Retriever.load(milvus=milvus, collection=collection)
    else:
        retriever = _open_retriever(index)
    # Load the embedding model now, in the background, so the first question is quick.
    threading.Thread(target=lambda: retriever.embedder, daemon=True).start()
    answerer = None
    if llm is not None:  # qa.generation.LLMSettings
        from ..generation import ModelAnswerer

        answerer = ModelAnswerer(retriever, llm)
    app = create_server_app(retriever, auth=auth, api_only=api_only, answerer=answerer)
    shown_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    what = "HTTP API" if api_only else "web chat"
    print(f"qa: serving the {what} on http://{shown_host}:{port}/ "
          f"(API docs at /docs; Ctrl+C to stop)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host.strip("[]"), port=port, log_level="warning")
