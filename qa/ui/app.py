"""The web chat: ask in English or German, read the answer with its ``[n]`` markers, and check
each claim against the highlighted sentence of the cited passage.

This module wires the Gradio Blocks: components, events and the four API endpoints. What the
chat does lives in :mod:`qa.ui.actions`, the HTML in :mod:`qa.ui.render` (Jinja2 templates under
``templates/``), the browser side in ``static/`` (CSS, and one script per component), and the
conversations, kept in the browser, in :mod:`qa.ui.conversations`.

Gradio API (``gradio_client``): ``/ask`` (question, k) -> answer dict, ``/search`` (question, k)
-> passages, ``/info`` () -> index summary, ``/upload`` (files) -> update report.
"""

from __future__ import annotations

import hashlib
import time
from functools import cache, partial
from importlib import resources
from typing import Any

import gradio as gr

from ..documents import SUPPORTED_SUFFIXES
from ..errors import QAError
from ..limits import DEFAULT_K, MAX_QUESTION_CHARS
from . import conversations as convs
from . import generated
from .actions import MAX_UI_K, ChatActions, discard_gradio_copies
from .gradio_errors import one_line_blocks
from .render import (
    TITLE,
    render_conversation,
    render_document,
    render_history,
    render_index,
    render_sources,
    render_stats,
    render_upload_status,
)

EXAMPLES = [
    "What did Ukraine offer in Istanbul?",
    "Wer sollte die Gespräche über eine Deeskalation vermitteln?",
    "Why did Russia say it was withdrawing from Kyiv?",
    "Was ist die stille Übereinkunft von 2023?",
]

VIEWER_HTML = ('<div class="qa-viewer-backdrop" hidden><div class="qa-viewer" role="dialog" '
               'aria-modal="true" aria-labelledby="qa-viewer-title"></div></div>')
KEYS_HTML = ('<div class="qa-hint-row"><a class="qa-skip" href="#qa-conv">Jump to the latest '
             "answer's markers</a><span>or press <kbd>Alt</kbd>+<kbd>J</kbd></span></div>")
SKIP_JS = ("element.addEventListener('click', (ev) => { if (ev.target.closest('.qa-skip') "
           "&& window.qaJumpToLatest && window.qaJumpToLatest()) ev.preventDefault(); });")
# The slider's number box accepts any number; bring what was typed into the slider's range.
# 0 is brought up to 1, not taken for "no number" (it became the default, 5: found by a tester)
CLAMP_K_JS = (f"(k) => {{ const n = Number(k); return k === '' || !Number.isFinite(n) ? "
              f"{DEFAULT_K} : Math.min({MAX_UI_K}, Math.max(1, Math.round(n))); }}")


@cache
def static_text(name: str) -> str:
    """A file of ``qa/ui/static`` (CSS or a component's script)."""
    return resources.files("qa.ui").joinpath("static", name).read_text(encoding="utf-8")


def theme() -> Any:
    return gr.themes.Soft(
        primary_hue="indigo",
        neutral_hue="slate",
        font=["Inter", "ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto",
              "Helvetica Neue", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )


def mount_kwargs() -> dict[str, Any]:
    """Look and feel, for ``gr.mount_gradio_app`` or ``Blocks.launch`` (Gradio 6 takes them
    there, not in ``gr.Blocks``)."""
    return {"theme": theme(), "css": static_text("chat.css") + static_text("generated.css")}


def _k(value: Any) -> int:
    """The slider's value as the whole number it shows (1..MAX_UI_K)."""
    try:
        return min(MAX_UI_K, max(1, int(round(float(value)))))
    except (TypeError, ValueError):
        return DEFAULT_K


def indexing_notice(names: list[str]) -> str | None:
    """What a turn asked while an upload is being indexed says about its answer."""
    if not names:
        return None
    return (f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} still being indexed: this "
            "was answered from the documents indexed before. Ask again once indexing is done.")


def build_app(retriever: Any, answerer: Any = None) -> Any:
    """The chat as a ``gr.Blocks``; ``qa serve`` serves it (or ``.launch(**mount_kwargs())``).
    With ``answerer`` (:class:`qa.generation.ModelAnswerer`) a language model writes the answers,
    streamed, each sentence checked; the user can switch back to quoted sentences."""
    actions = ChatActions(retriever, answerer)
    model_choice = generated.model_choice(answerer.model_label) if answerer else ""
    # Conversations live in the browser's localStorage; Gradio encrypts them there with this key,
    # which only keeps them readable across server restarts (it is no secret from the browser).
    digest = hashlib.sha256(f"qa-conversations:{retriever.index.path}".encode()).hexdigest()

    def index_views(message: str | None = None) -> tuple[str, str]:
        info = retriever.info()
        return render_stats(info), render_index(info, retriever.documents(), message)

    def views(store: Any) -> tuple[str, str, str, Any]:
        s = convs.checked(store)
        turns = convs.current_turns(s)
        return render_conversation(turns), render_sources(turns), render_history(s), s

    # ---- chat handlers (UI only: hidden from the API) ----
    def shown(store: Any) -> tuple[str, str, str]:
        # Never writes the store back: on page load it may still be the default value, read
        # before the browser's copy, and writing that would erase the saved conversations.
        chat_html, sources_html, history_html, _ = views(convs.without_stale(store))
        return chat_html, sources_html, history_html

    def shown_when_settled(store: Any) -> tuple[Any, ...]:
        # While a question is being answered its own handlers draw the page; a late redraw from
        # this change could put "Searching" back over the answer.
        if any(t.get("pending") for t in convs.current_turns(convs.without_stale(store))):
            return gr.skip(), gr.skip(), gr.skip()
        return shown(store)

    def start(question: str, store: Any) -> tuple[Any, ...]:
        q = (question or "").strip()
        if not q:
            return (gr.skip(),) * 5
        turns = [*convs.current_turns(store), {"q": q, "pending": True, "since": time.time()}]
        return ("", *views(convs.with_turns(store, turns)))

    def start_example(question: str, store: Any) -> tuple[Any, ...]:
        # An example is asked without touching the question box: a draft there was thrown away
        # (found by a browser tester).
        return (gr.skip(), *start(question, store)[1:])

    def finish(store: Any, k: Any, mode: Any = None) -> Any:
        turns = convs.current_turns(store)
        if not any(t.get("pending") for t in turns):
            yield (gr.skip(),) * 4
            return
        use_model = answerer is not None and mode != generated.EXTRACTIVE
        out: list[dict[str, Any]] = []
        for t in turns:
            if t.get("pending"):
                history = convs.history_for(out)
                t = {"q": t["q"], "pending": True}
                out.append(t)
                notice = indexing_notice(actions.indexing)
                try:
                    for kind, value in actions.ask_stream(t["q"], _k(k), history=history,
                                                          use_model=use_model):
                        if kind == "result":
                            t["result"] = value
                            if convs.read_with(history, value):
                                t["read_with"] = convs.read_with(history, value)
                        elif kind == "rewrite":
                            t["rewrite"] = value
                        else:  # the text as the model writes it; the store is saved at the end
                            t["model"] = answerer.model_label
                            t["partial"] = t.get("partial", "") + value
                            yield render_conversation(out), gr.skip(), gr.skip(), gr.skip()
                except QAError as exc:
                    t["error"] = str(exc)
                for key in ("pending", "partial", "rewrite", "model"):
                    t.pop(key, None)
                if notice:
                    t["notice"] = notice
            else:
                out.append(t)
        yield views(convs.with_turns(store, out))

    def on_history(store: Any, evt: gr.SelectData) -> tuple[Any, ...]:
        action, conv_id = evt.value, str(evt.index or "")
        if action == "delete":
            store = convs.deleted(store, conv_id)
        else:
            store = convs.opened(store, conv_id if action == "open" else None)
        return views(store)

    def on_index_action(evt: gr.SelectData) -> tuple[Any, ...]:
        if evt.value != "delete":
            return gr.skip(), gr.skip(), gr.skip()
        try:
            rep = actions.delete(evt.index)
            message = (f"Deleted {', '.join(rep['removed'])}. The index holds "
                       f"{rep['documents']:,} documents.")
        except QAError as exc:
            message = f"Could not delete: {exc}"
        # The last upload's report ("The index holds 3 documents") is out of date once a
        # document is gone: the upload box goes back to its rules.
        return (*index_views(message), render_upload_status(None))

    def on_upload(
        files: list[str] | None, progress: Any = gr.Progress()  # noqa: B008 (Gradio's idiom)
    ) -> tuple[Any, ...]:
        if not files:
            return (gr.skip(),) * 4
        progress(0, desc="Reading files")

        def step(done: int, total: int) -> None:
            progress((done, total) if total else 1.0, desc="Embedding passages", unit="texts")

        try:
            status = render_upload_status(actions.upload(files, progress=step))
        except QAError as exc:
            status = render_upload_status(None, error=str(exc))
        finally:
            discard_gradio_copies(files)
        return (status, *index_views(), None)

    # ---- server functions (called from the page's scripts; never API endpoints) ----
    def record_feedback(data: Any) -> dict[str, Any]:
        """Feedback on one answer -> ``{"ok": True, "id"}``, or ``{"ok": False, "error"}``."""
        try:
            return {"ok": True, "id": actions.record_feedback(data)["id"]}
        except QAError as exc:
            return {"ok": False, "error": str(exc)}

    def document_html(wanted: Any) -> dict[str, Any]:
        """``{"doc_id", "highlights"}`` -> ``{"html"}`` of the viewer, or ``{"error"}``."""
        wanted = wanted if isinstance(wanted, dict) else {}
        try:
            doc = actions.document(wanted.get("doc_id"), wanted.get("highlights") or [])
            return {"html": render_document(doc)}
        except QAError as exc:
            return {"error": str(exc)}

    # ---- API handlers (gradio_client) ----
    def api_ask(question: str, k: int = DEFAULT_K) -> dict:  # type: ignore[type-arg]
        """Answer a question from the documents: `answer` (sentences each followed by [n]),
        `abstained`, `confidence`, `citations`, and `passages` in rank order, each with
        `highlights` (document offsets of the cited sentences) and `highlight_texts`."""
        try:
            return actions.ask(question, k)
        except QAError as exc:
            raise gr.Error(str(exc), print_exception=False) from exc

    def api_search(question: str, k: int = DEFAULT_K) -> dict:  # type: ignore[type-arg]
        """The k passages that best match the question, best first."""
        try:
            return actions.search(question, k)
        except QAError as exc:
            raise gr.Error(str(exc), print_exception=False) from exc

    def api_info() -> dict:  # type: ignore[type-arg]
        """What is in the index: counts, model, chunking, and the documents."""
        return actions.info()

    def api_upload(files: list[str] | None) -> dict[str, Any]:
        """Add documents (.txt, .md, .html, .pdf; 20 MB each) to the index; returns what was
        added, updated, unchanged or skipped (with reasons), and a message."""
        try:
            return actions.upload(files or [])
        except QAError as exc:
            raise gr.Error(str(exc), print_exception=False) from exc
        finally:
            discard_gradio_copies(files)

    info0 = retriever.info()
    docs0 = retriever.documents()
    html: dict[str, Any] = {"apply_default_css": False}
    with one_line_blocks()(title=f"{TITLE} · qa") as demo:
        store = gr.BrowserState(convs.empty_store(), storage_key=f"qa-conversations-{digest[:8]}",
                                secret=digest[:32])
        header = gr.HTML(render_stats(info0), elem_id="qa-header", **html)
        with gr.Row(equal_height=False, elem_id="qa-main"):
            with gr.Column(scale=11, min_width=320):
                history = gr.HTML(render_history(convs.empty_store()), elem_id="qa-history",
                                  js_on_load=static_text("history.js"), **html)
                chat = gr.HTML(render_conversation([]), elem_id="qa-chat",
                               js_on_load=static_text("conversation.js"),
                               server_functions=[record_feedback], **html)
                with gr.Row(elem_classes=["qa-composer"]):
                    question = gr.Textbox(
                        placeholder="Ask a question in English or German…", show_label=False,
                        label="Question",  # its accessible name (it was "Textbox")
                        lines=1, max_lines=6, scale=8, container=False, autofocus=True,
                        elem_id="qa-question", max_length=MAX_QUESTION_CHARS,
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, min_width=80,
                                     elem_id="qa-send", elem_classes=["qa-send"])
                gr.HTML(KEYS_HTML, elem_id="qa-keys", js_on_load=SKIP_JS, **html)
                with gr.Row(elem_id="qa-examples"):
                    example_buttons = [
                        gr.Button(q, size="sm", variant="secondary", scale=0, min_width=0)
                        for q in EXAMPLES
                    ]
            with gr.Column(scale=9, min_width=320):
                sources = gr.HTML(render_sources([]), elem_id="qa-sources",
                                  js_on_load=static_text("sources.js"), **html)
                with gr.Row(elem_classes=["qa-controls"], equal_height=True):
                    k = gr.Slider(1, MAX_UI_K, value=DEFAULT_K, step=1,
                                  label="Passages to retrieve", elem_id="qa-k")
                # Which model answers, and the way back to quoted sentences.
                modes = [model_choice, generated.EXTRACTIVE] if answerer else [generated.EXTRACTIVE]
                answer_mode = gr.Radio(modes, value=modes[0], label="Answers written by",
                                       elem_id="qa-mode", visible=answerer is not None)
        with gr.Row(equal_height=False, elem_classes=["qa-lower"]):
            with gr.Column(scale=11, min_width=320):
                index_panel = gr.HTML(render_index(info0, docs0), elem_id="qa-index-panel",
                                      js_on_load=static_text("index_panel.js"), **html)
            with gr.Column(scale=9, min_width=300, elem_classes=["qa-upload-card"]):
                gr.HTML('<h2 class="qa-card-title">Add documents</h2>', elem_id="qa-upload-title",
                        **html)
                files = gr.File(
                    label="Documents (.txt, .md, .html, .pdf)", file_count="multiple",
                    file_types=list(SUPPORTED_SUFFIXES), type="filepath", height=120,
                    elem_id="qa-upload",
                )
                upload_status = gr.HTML(render_upload_status(None), elem_id="qa-upload-status",
                                        js_on_load=static_text("upload_status.js"), **html)
        gr.HTML(VIEWER_HTML, elem_id="qa-viewer", js_on_load=static_text("viewer.js"),
                server_functions=[document_html], **html)

        # The API endpoints, with hidden components so that uploaded files go through Gradio's
        # upload checks (a client cannot name a file on the server).
        with gr.Row(visible=False):
            api_files = gr.File(file_count="multiple", type="filepath")
            api_report = gr.JSON()
            api_upload_btn = gr.Button()

        private: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
        conversation = [chat, sources, history, store]
        ev = gr.on([question.submit, send.click], start, [question, store],
                   [question, *conversation], **private)
        # Several answers may stream at once: a slow model must not hold up other visitors.
        streaming: dict[str, Any] = {"concurrency_limit": 8, **private}
        ev.then(finish, [store, k, answer_mode], conversation, **streaming)
        for b, q in zip(example_buttons, EXAMPLES):
            b.click(partial(start_example, q), [store], [question, *conversation],
                    **private).then(
                finish, [store, k, answer_mode], conversation, **streaming)
        history.select(on_history, [store], conversation, **private)
        index_panel.select(on_index_action, None, [header, index_panel, upload_status], **private)
        k.change(None, [k], [k], js=CLAMP_K_JS, **private)
        files.upload(on_upload, [files], [upload_status, header, index_panel, files],
                     show_progress="full", show_progress_on=[upload_status],
                     api_visibility="private")
        # The saved conversations arrive from localStorage as a change of `store`, possibly after
        # the page's load event; both show them.
        demo.load(lambda s: (*shown(s), *index_views()), [store],
                  [chat, sources, history, header, index_panel], **private)
        store.change(shown_when_settled, [store], [chat, sources, history], **private)

        gr.api(api_ask, api_name="ask")
        gr.api(api_search, api_name="search")
        gr.api(api_info, api_name="info")
        api_upload_btn.click(api_upload, [api_files], [api_report], api_name="upload")
    return demo
