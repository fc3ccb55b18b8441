"""Build the cross-lingual XQuAD evaluation set from the development half in ../shared/xquad/.

Each German paragraph becomes one document (``corpus/<Article>/<NN>.txt``); every question is
kept twice, in English and in German, with the paragraph's document id and the German answer
texts. Run from the repository root:

    python eval/build_xquad.py [SOURCE_DIR]      # default: ../shared/xquad

It also writes ``eval/xquad-mixed/``: half the articles in English, so that a question meets
paragraphs in its own language that do not answer it (see ``build_mixed``).

XQuAD: Artetxe, Ruder and Yogatama (2019), CC BY-SA 4.0; see eval/xquad/README.md.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build(source: Path, out: Path) -> int:
    de = json.loads((source / "xquad.dev.de.json").read_text(encoding="utf-8"))
    en = json.loads((source / "xquad.dev.en.json").read_text(encoding="utf-8"))
    english = {
        q["id"]: q["question"] for a in en["data"] for p in a["paragraphs"] for q in p["qas"]
    }
    corpus = out / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    rows = []
    for article in de["data"]:
        for n, paragraph in enumerate(article["paragraphs"]):
            doc_id = f"{article['title']}/{n:02d}.txt"
            path = corpus / doc_id
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(paragraph["context"], encoding="utf-8")
            for q in paragraph["qas"]:
                answers = sorted({a["text"] for a in q["answers"]})
                for lang, text in (("en", english[q["id"]]), ("de", q["question"])):
                    rows.append({"id": f"{q['id']}-{lang}", "question": text, "doc": doc_id,
                                 "answers": answers, "lang": lang})
    with open(out / "questions.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    shutil.copy(source / "LICENSE-CC-BY-SA-4.0.txt", out / "LICENSE-CC-BY-SA-4.0.txt")
    return len(rows)


def build_mixed(source: Path, out: Path) -> int:
    """The mixed-language set: the paragraphs of every other article in German, the rest in
    English (``corpus/<Article>/<NN>.<lang>.txt``), every question in both languages with the
    answer texts in its document's language, and ``lang`` the pair, question -> document
    ("en->de", "de->en", "de->de", "en->en"): a question must find its paragraph among
    paragraphs in its own language."""
    de = json.loads((source / "xquad.dev.de.json").read_text(encoding="utf-8"))
    en = json.loads((source / "xquad.dev.en.json").read_text(encoding="utf-8"))
    corpus = out / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    rows = []
    for i, (a_de, a_en) in enumerate(zip(de["data"], en["data"])):
        doc_lang = "de" if i % 2 == 0 else "en"
        for n, (p_de, p_en) in enumerate(zip(a_de["paragraphs"], a_en["paragraphs"])):
            doc_id = f"{a_de['title']}/{n:02d}.{doc_lang}.txt"
            paragraph = p_de if doc_lang == "de" else p_en
            path = corpus / doc_id
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(paragraph["context"], encoding="utf-8")
            for q_de, q_en in zip(p_de["qas"], p_en["qas"]):
                answer_q = q_de if doc_lang == "de" else q_en
                answers = sorted({a["text"] for a in answer_q["answers"]})
                for lang, q in (("en", q_en), ("de", q_de)):
                    rows.append({"id": f"{q_de['id']}-{lang}", "question": q["question"],
                                 "doc": doc_id, "answers": answers,
                                 "lang": f"{lang}->{doc_lang}"})
    with open(out / "questions.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    shutil.copy(source / "LICENSE-CC-BY-SA-4.0.txt", out / "LICENSE-CC-BY-SA-4.0.txt")
    return len(rows)


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "shared" / "xquad"
    print(f"{build(src, HERE / 'xquad')} questions written to {HERE / 'xquad'}")
    print(f"{build_mixed(src, HERE / 'xquad-mixed')} questions written to {HERE / 'xquad-mixed'}")
