"""The chat's controls for answers a language model writes: which model answers, and the way
back to quoted sentences. The answer's HTML (streamed text, then sentences with an
"unsupported" mark) is in ``templates/``; its styles in ``static/generated.css``.
"""

from __future__ import annotations

EXTRACTIVE = "Quoted sentences (no model)"


def model_choice(label: str) -> str:
    """The chat's choice that asks the language model."""
    return f"Model: {label}"
