"""What an existing index can honour: it is searched with the embedder it was built with, and
updated with its own chunking. Options it cannot honour are refused with the command that
rebuilds it, never silently ignored (re-embedding everything is the user's call).

Both backends use these, each naming itself: ``where`` ("index PATH", or the Milvus collection)
and ``target``, the options of ``qa index`` that name it again.
"""

from __future__ import annotations

from typing import Any

from .errors import BadRequest, EmbedderMismatch


def check_embedder(asked: object, built_with: str, where: str, target: str) -> None:
    """EmbedderMismatch if ``asked`` (a name, an embedder object or None) is not the embedder
    the index was built with."""
    name = asked if isinstance(asked, str) else getattr(asked, "name", None)
    if isinstance(asked, str) and name != built_with:
        # a name that is no embedder at all is that mistake, not a reason to rebuild with it
        from .embedders import check_embedder_name

        check_embedder_name(asked)
    if name is not None and name != built_with:
        raise EmbedderMismatch(
            f"{where} was built with embedder {built_with!r}, not {name!r}; search it with "
            f"{built_with!r} or rebuild it with `qa index PATH... {target} --embedder {name} "
            "--rebuild`")


def check_chunking(asked: dict[str, Any], built: dict[str, Any], where: str,
                   target: str) -> None:
    """BadRequest if an option given (``chunk_size``, ``passage_vectors``; None = left out)
    differs from what the index was built with."""
    built = {"passage_vectors": "embed", **built}
    for key, value in asked.items():
        if value is not None and built.get(key) != value:
            option = "--" + key.replace("_", "-")
            raise BadRequest(
                f"{where} was built with {option} {built.get(key)}, not {value}; to change it, "
                f"re-embed everything: `qa index PATH... {target} {option} {value} --rebuild`")
