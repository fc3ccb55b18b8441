"""Gradio's own input errors as one line for the API client.

Before our handlers run, Gradio checks a call's inputs and reports mistakes in several lines:
too few inputs list ``<gradio.components.api_component.Api object at 0x7f...>`` reprs, and a
malformed file is a multi-line pydantic ``ValidationError`` with a link. A ``gr.Blocks`` from
:func:`one_line_blocks` turns those into one ``gr.Error`` line that says what was expected.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import one_line

_OBJECT_REPR = re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>")
_MAX_CHARS = 300


def input_error_line(exc: BaseException) -> str:
    """One line for an input Gradio refused: pydantic errors by location and message, object
    reprs by their class name only."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors()[:3]:
            loc = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in err.get("loc", ()))
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            parts.append(f"input{loc}: {msg}" if loc else msg)
        text = "; ".join(parts)
        if "gradio.FileData" in text:
            text += " (send files with gradio_client.handle_file(path))"
    else:
        text = str(exc)
    text = _OBJECT_REPR.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)
    return one_line(text, _MAX_CHARS) or "invalid input"


def one_line_blocks() -> type[Any]:
    """``gr.Blocks`` whose input errors reach API clients as one line (imports gradio)."""
    import gradio as gr
    from pydantic import ValidationError

    class OneLineErrorBlocks(gr.Blocks):
        """``gr.Blocks`` with one-line errors for inputs Gradio itself refuses."""

        def validate_inputs(self, block_fn: Any, inputs: list[Any]) -> None:
            needed = len(block_fn.inputs)
            if len(inputs) < needed:
                name = f"/{block_fn.api_name}" if block_fn.api_name else "this event"
                raise gr.Error(f"{name} takes {needed} input{'s' * (needed != 1)}, "
                               f"got {len(inputs)}", print_exception=False)
            super().validate_inputs(block_fn, inputs)

        async def preprocess_data(self, block_fn: Any, inputs: list[Any], state: Any,
                                  explicit_call: bool = False) -> Any:
            try:
                return await super().preprocess_data(block_fn, inputs, state, explicit_call)
            except gr.Error:
                raise
            except (ValidationError, ValueError, TypeError) as exc:
                raise gr.Error(input_error_line(exc), print_exception=False) from exc

    return OneLineErrorBlocks
