"""Reading documents: files and folders in, plain text with a stable id and title out.

Supported: ``.txt``, ``.md``, ``.html``/``.htm`` (visible text only) and ``.pdf`` (text layer).
A file that cannot be read is reported by name and skipped; it never aborts a run.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .errors import one_line

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")
MAX_FILE_BYTES = 50 * 1024 * 1024
# Text per document, counted as it is extracted: a 17 KB PDF held 100 million characters (100 pages
# sharing one compressed stream), which no file-size limit sees. A million characters (a 500-page
# book) take minutes to embed on a laptop's CPU; ``QA_MAX_DOCUMENT_CHARS`` sets another limit.
MAX_DOCUMENT_CHARS = 1_000_000
# Decoded page content (text and drawing operators) a PDF may hand the text extractor: bounds its
# work on pages that hold little text.
MAX_PDF_CONTENT_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Document:
    """One source document: its id (path relative to the folder given), title and full text."""

    doc_id: str
    title: str
    text: str
    path: str

    @property
    def content_hash(self) -> str:
        """SHA-256 of the text, used to skip re-embedding unchanged documents."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SkippedFile:
    """A file that could not be read, with a one-line reason."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.path}: {self.reason}"


class UnreadableFile(ValueError):
    """Raised by :func:`read_document` with a one-line reason."""


# Non-ASCII letters and punctuation of German, English and their Western neighbours as they
# appear in Windows-1252 text; text in other single-byte encodings read as cp1252 is mostly other
# characters (Cyrillic cp1251 becomes "Ïðèâåò").
_WESTERN = set("äöüÄÖÜßéèêëàâáçñíìóòôúùûîïÉÈÀÇ€–—„“”‚‘’…«»‹›°§·\u00a0")


def _looks_western(text: str) -> bool:
    special = [c for c in text if ord(c) > 127]
    if not special:
        return True
    letters = sum(c.isalpha() for c in text)
    western = sum(c in _WESTERN for c in special)
    return western >= 0.9 * len(special) and len(special) <= 0.5 * max(letters, 1)


def decode_bytes(data: bytes) -> str:
    """Decode UTF-8 (with or without BOM), else the encoding charset-normalizer detects."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnreadableFile("looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    # UTF-8 with a few damaged bytes: keep it UTF-8, the bad bytes replaced (read as cp1252, every
    # umlaut of it was garbled: "heiĂŸt"). Text in a single-byte encoding has next to no valid
    # multi-byte UTF-8 sequences in it.
    text = data.decode("utf-8-sig", "replace")
    bad = text.count("\ufffd")
    if any(ord(c) > 127 and c != "\ufffd" for c in text) and bad <= max(16, len(text) // 100):
        return text
    # charset-normalizer guesses short Western texts wildly (UTF-16, Mac Roman, cp1006 for
    # "Grüße aus München"); take Windows-1252 first when it yields plausible Western text.
    if b"\x00" not in data:
        try:
            western = data.decode("cp1252")
        except UnicodeDecodeError:
            western = ""
        if western and _looks_western(western):
            return western
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise UnreadableFile("not text in any encoding that could be detected")
    encoding = best.encoding
    # Latin-1 and cp1252 differ only in 0x80-0x9f; cp1252 is what such German files really are.
    if encoding in ("latin_1", "iso8859_1"):
        encoding = "cp1252"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return str(best)


class _VisibleText(HTMLParser):
    """Collects the text a browser would show, plus the <title>."""

    _HIDDEN = {"script", "style", "noscript", "template", "head", "svg"}
    _BLOCK = {
        "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
        "section", "article", "header", "footer", "blockquote", "pre", "hr", "dd", "dt",
    }

    _VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
             "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._hidden = 0
        # The outermost element hidden by its attributes, and how deep its own tag is nested
        # in it (a browser shows none of it: an API tester found "display:none" text indexed).
        self._hidden_by: list[Any] = []
        self._in_title = False

    @staticmethod
    def _hides(attrs: list[tuple[str, str | None]]) -> bool:
        for name, value in attrs:
            style = re.sub(r"\s+", "", (value or "").lower()) if name == "style" else ""
            if name == "hidden" or "display:none" in style or "visibility:hidden" in style:
                return True
        return False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self._HIDDEN:
            self._hidden += 1
        if self._hidden_by:
            if tag == self._hidden_by[0]:
                self._hidden_by[1] += 1
        elif tag not in self._VOID and self._hides(attrs):
            self._hidden_by = [tag, 1]
        if tag in self._BLOCK:
            self.parts.append("\n\n" if tag != "br" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._HIDDEN and self._hidden:
            self._hidden -= 1
        if self._hidden_by and tag == self._hidden_by[0]:
            self._hidden_by[1] -= 1
            if not self._hidden_by[1]:
                self._hidden_by = []
        if tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif not self._hidden and not self._hidden_by:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str | None]:
    """Visible text of an HTML page and its <title> (or None)."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    title = " ".join("".join(parser.title_parts).split()) or None
    return text, title


def max_document_chars() -> int:
    """The text limit per document: ``$QA_MAX_DOCUMENT_CHARS``, else :data:`MAX_DOCUMENT_CHARS`."""
    value = os.environ.get("QA_MAX_DOCUMENT_CHARS", "")
    return int(value) if value.strip().isdigit() and int(value) > 0 else MAX_DOCUMENT_CHARS


def _too_much_text(chars: int | str, limit: int) -> UnreadableFile:
    return UnreadableFile(f"too much text ({chars} characters; limit {limit:,}, "
                          "set QA_MAX_DOCUMENT_CHARS to change it)")


def _content_bytes(page: Any) -> int:
    """Size of a PDF page's decoded content streams."""
    contents = page.get("/Contents")
    if contents is None:
        return 0
    contents = contents.get_object()
    streams = contents if isinstance(contents, list) else [contents]
    return sum(len(s.get_object().get_data()) for s in streams)


class _TextBudgetSpent(Exception):
    """Raised from pypdf's text visitor to stop extracting as soon as the budget is spent."""


def _pdf_text(path: Path, limit: int) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    chars = 0
    content = 0

    def count(text: str, *_: Any) -> None:
        nonlocal chars
        chars += len(text)
        if chars > limit:
            raise _TextBudgetSpent

    try:
        reader = PdfReader(str(path))
        pages = []
        for page in reader.pages:
            content += _content_bytes(page)
            if content > MAX_PDF_CONTENT_BYTES:
                raise UnreadableFile(f"too much page content (more than "
                                     f"{MAX_PDF_CONTENT_BYTES // 2**20} MiB decoded)")
            pages.append(page.extract_text(visitor_text=count) or "")
    except UnreadableFile:
        raise
    except _TextBudgetSpent:
        raise _too_much_text(f"more than {limit:,}", limit) from None
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise UnreadableFile(f"damaged PDF ({one_line(exc, 200)})") from exc
    except Exception as exc:  # pypdf on a damaged file can raise nearly anything
        raise UnreadableFile(f"damaged PDF ({type(exc).__name__}: {one_line(exc, 200)})") from exc
    return "\n\n".join(p.strip() for p in pages if p.strip())


def _markdown_title(text: str) -> str | None:
    match = re.search(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else None


def read_document(path: str | os.PathLike[str], doc_id: str | None = None) -> Document:
    """Read one file into a :class:`Document`; raises :class:`UnreadableFile` with a reason."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableFile(
            f"unsupported file type {suffix or '(none)'!r}; supported: "
            + ", ".join(SUPPORTED_SUFFIXES)
        )
    limit = MAX_FILE_BYTES // 2**20
    max_chars = max_document_chars()
    try:
        st = p.stat()
        # A FIFO or device named like a document would block or never end: regular files only.
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile("not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise UnreadableFile(f"too large ({-(-st.st_size * 10 // 2**20) / 10} MiB; "
                                 f"limit {limit} MiB)")
        if suffix == ".pdf":
            text, title = _pdf_text(p, max_chars), None
        else:
            with open(p, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)  # it may have grown since stat()
            if len(data) > MAX_FILE_BYTES:
                raise UnreadableFile(f"too large (more than {limit} MiB)")
            raw = decode_bytes(data)
            if suffix in (".html", ".htm"):
                text, title = html_to_text(raw)
            else:
                text = raw.replace("\r\n", "\n").replace("\r", "\n")
                title = _markdown_title(text) if suffix in (".md", ".markdown") else None
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from exc
    if len(text) > max_chars:
        raise _too_much_text(f"{len(text):,}", max_chars)
    if not text.strip():
        raise UnreadableFile("contains no text")
    return Document(doc_id=doc_id or p.name, title=title or p.name, text=text, path=str(p))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def iter_files(
    paths: Iterable[str | os.PathLike[str]], skipped: list[SkippedFile] | None = None
) -> Iterator[tuple[Path, str]]:
    """Yield ``(file, doc_id)`` for files and, recursively, folders; ids are relative paths.

    Hidden files and folders are skipped, symlink loops are not followed twice, and links that
    lead out of a folder given are not followed (listed in ``skipped`` when given): indexing
    ``docs/`` must not serve ``docs/passwd.txt -> /etc/passwd``.
    """
    for given in paths:
        root = Path(given)
        if root.is_dir():
            top = os.path.realpath(root)
            seen: set[str] = set()
            for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
                real = os.path.realpath(dirpath)
                if real in seen or not _inside(real, top):
                    if not _inside(real, top) and skipped is not None:
                        skipped.append(SkippedFile(dirpath, _LEAVES_FOLDER))
                    dirnames[:] = []
                    continue
                seen.add(real)
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith(".") or not name.lower().endswith(SUPPORTED_SUFFIXES):
                        continue
                    f = Path(dirpath) / name
                    # Dangling links and loops fall through and are named when read.
                    if f.exists() and not _inside(os.path.realpath(f), top):
                        if skipped is not None:
                            skipped.append(SkippedFile(str(f), _LEAVES_FOLDER))
                        continue
                    doc_id = f.relative_to(root).as_posix()
                    if _named(f, doc_id, skipped):
                        yield f, doc_id
        elif _named(root, root.name, skipped):
            yield root, root.name


_LEAVES_FOLDER = "a link to outside the folder being indexed (not followed)"
_NOT_UTF8_NAME = "its name is not valid UTF-8 (an old archive's encoding?): rename the file"


def printable_path(path: str | os.PathLike[str]) -> str:
    """``path`` as text that can always be printed: bytes of a name that are not UTF-8 shown
    as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _named(f: Path, doc_id: str, skipped: list[SkippedFile] | None) -> bool:
    """Whether ``doc_id`` can be a document id: a name whose bytes are not UTF-8 (Python keeps
    them as lone surrogates) could not be written to the index, and stopped the whole update."""
    try:
        doc_id.encode("utf-8")
    except UnicodeEncodeError:
        if skipped is not None:
            skipped.append(SkippedFile(printable_path(f), _NOT_UTF8_NAME))
        return False
    return True


def load_documents(
    paths: Iterable[str | os.PathLike[str]],
    *,
    only: Callable[[str], bool] | None = None,
) -> tuple[list[Document], list[SkippedFile]]:
    """Read every supported file under ``paths`` (with ``only``, those whose document id it
    accepts); return documents and skipped files."""
    docs: list[Document] = []
    skipped: list[SkippedFile] = []
    for f, doc_id in iter_files(paths, skipped):
        if only is not None and not only(doc_id):
            continue
        if not f.exists() and not f.is_symlink():
            skipped.append(SkippedFile(str(f), "no such file or folder"))
            continue
        try:
            docs.append(read_document(f, doc_id))
        except UnreadableFile as exc:
            skipped.append(SkippedFile(str(f), str(exc)))
    return docs, skipped
