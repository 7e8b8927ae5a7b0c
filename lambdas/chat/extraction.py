"""Text out of the formats the knowledge base accepts (txt, md, html, pdf) and token-aware
chunking with overlap."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Final

from lambdas.chat.constants import CHUNK_MAX_TOKENS, CHUNK_OVERLAP_TOKENS
from lambdas.chat.errors import DocumentUnreadable, UnsupportedDocument
from lambdas.chat.models import ChunkDraft
from lambdas.chat.text import estimate_tokens

CONTENT_TYPES: Final = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}
_SENTENCE_BREAK = re.compile(r"(?<=[.!?;])\s+|\n\s*\n")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def content_type_for(filename: str) -> str:
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix not in CONTENT_TYPES:
        raise UnsupportedDocument(f"unsupported document type {suffix or '(none)'!r}")
    return CONTENT_TYPES[suffix]


def extract_text(data: bytes, content_type: str) -> str:
    """The document's text, whitespace normalised; ``DocumentUnreadable`` if there is none."""
    if content_type == "application/pdf":
        text = _pdf_text(data)
    elif content_type == "text/html":
        text = _html_text(_decode(data))
    elif content_type in ("text/plain", "text/markdown"):
        text = _decode(data)
    else:
        raise UnsupportedDocument(f"unsupported content type {content_type!r}")
    lines = (_SPACES.sub(" ", line).strip() for line in text.replace("\x00", "").splitlines())
    normalised = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if not normalised:
        raise DocumentUnreadable("the document holds no extractable text")
    return normalised


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader  # noqa: PLC0415
    from pypdf.errors import PyPdfError  # noqa: PLC0415

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PyPdfError, ValueError, KeyError, TypeError) as error:
        raise DocumentUnreadable("the PDF could not be read") from error


class _TextOfHtml(HTMLParser):
    _SKIPPED: Final = frozenset({"script", "style", "noscript", "template", "head"})
    _BLOCKS: Final = frozenset(
        {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html_text(markup: str) -> str:
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def chunk_text(
    text: str, *, max_tokens: int = CHUNK_MAX_TOKENS, overlap_tokens: int = CHUNK_OVERLAP_TOKENS
) -> list[ChunkDraft]:
    """Pack sentences into chunks of at most ``max_tokens`` (estimated), each starting with up
    to ``overlap_tokens`` of the previous chunk's last sentences. A sentence longer than a
    chunk is cut into overlapping word windows."""
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError("overlap must be smaller than the chunk size")
    pieces: list[tuple[str, int]] = []
    for sentence in _SENTENCE_BREAK.split(text):
        sentence = sentence.strip()  # noqa: PLW2901
        if sentence:
            pieces.extend(_fit(sentence, max_tokens, overlap_tokens))
    chunks: list[list[tuple[str, int]]] = []
    current: list[tuple[str, int]] = []
    size = 0
    fresh = 0  # tokens in ``current`` that no earlier chunk holds
    for piece, tokens in pieces:
        if current and size + tokens > max_tokens:
            chunks.append(current)
            current, size = _tail(current, overlap_tokens, max_tokens - tokens)
            fresh = 0
        current.append((piece, tokens))
        size += tokens
        fresh += tokens
    if current and fresh:
        chunks.append(current)
    return [
        ChunkDraft(index=i, content=" ".join(p for p, _ in c), token_count=sum(t for _, t in c))
        for i, c in enumerate(chunks)
    ]


def _fit(sentence: str, max_tokens: int, overlap_tokens: int) -> list[tuple[str, int]]:
    tokens = estimate_tokens(sentence)
    if tokens <= max_tokens:
        return [(sentence, tokens)]
    words = sentence.split()
    windows: list[tuple[str, int]] = []
    start = 0
    while start < len(words):
        end = start
        size = 0
        while end < len(words):
            cost = estimate_tokens(words[end])
            if size + cost > max_tokens and end > start:
                break
            size += cost
            end += 1
        windows.append((" ".join(words[start:end]), size))
        if end >= len(words):
            break
        back = end
        kept = 0
        while back > start + 1 and kept + estimate_tokens(words[back - 1]) <= overlap_tokens:
            back -= 1
            kept += estimate_tokens(words[back])
        start = back
    return windows


def _tail(
    pieces: list[tuple[str, int]], overlap_tokens: int, room: int
) -> tuple[list[tuple[str, int]], int]:
    """The last pieces of a chunk that fit in the overlap and leave room for the next piece."""
    kept: list[tuple[str, int]] = []
    size = 0
    for piece, tokens in reversed(pieces):
        if size + tokens > min(overlap_tokens, room):
            break
        kept.insert(0, (piece, tokens))
        size += tokens
    return kept, size
