"""Text extraction, token-aware chunking and the text helpers, without I/O."""

from __future__ import annotations

import itertools

import pytest

from lambdas.chat.errors import DocumentUnreadable, UnsupportedDocument
from lambdas.chat.extraction import chunk_text, content_type_for, extract_text
from lambdas.chat.text import estimate_tokens, fold, stems
from tests.support.chat import portuguese_pdf


def test_html_keeps_the_text_and_drops_scripts_and_styles() -> None:
    html = (
        b"<html><head><title>t</title><style>p{}</style></head><body>"
        b"<h1>Pol&iacute;tica</h1><p>Reembolso em <b>30 dias</b>.</p>"
        b"<script>alert('x')</script></body></html>"
    )
    assert extract_text(html, "text/html") == "Política\n\nReembolso em 30 dias."


def test_text_in_latin_1_is_read_too() -> None:
    assert extract_text("Ação rápida".encode("cp1252"), "text/plain") == "Ação rápida"


def test_a_portuguese_pdf_keeps_its_accents() -> None:
    pdf = portuguese_pdf(["Informação sobre rescisão e férias."])
    assert extract_text(pdf, "application/pdf") == "Informação sobre rescisão e férias."


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(b"   \n\n ", "text/plain"), (b"not a pdf", "application/pdf")],
)
def test_documents_without_text_are_unreadable(data: bytes, content_type: str) -> None:
    with pytest.raises(DocumentUnreadable):
        extract_text(data, content_type)


def test_unknown_types_are_refused() -> None:
    assert content_type_for("Guia.MD") == "text/markdown"
    with pytest.raises(UnsupportedDocument):
        content_type_for("planilha.xlsx")


def test_chunks_respect_the_size_and_overlap() -> None:
    sentences = [f"Frase número {i} fala de contratos e prazos." for i in range(60)]
    chunks = chunk_text(" ".join(sentences), max_tokens=40, overlap_tokens=10)
    assert len(chunks) > 5
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.token_count <= 40 for c in chunks)
    assert all(c.token_count == estimate_tokens(c.content) for c in chunks)
    for previous, current in itertools.pairwise(chunks):
        assert previous.content.split(". ")[-1].rstrip(".") in current.content  # the overlap
    assert "Frase número 59" in chunks[-1].content
    assert "Frase número 0 " in chunks[0].content


def test_a_sentence_longer_than_a_chunk_is_cut_into_windows() -> None:
    words = " ".join(f"palavra{i}" for i in range(100))
    chunks = chunk_text(words, max_tokens=30, overlap_tokens=5)
    assert all(c.token_count <= 30 for c in chunks)
    assert "palavra0" in chunks[0].content
    assert "palavra99" in chunks[-1].content


def test_the_overlap_must_be_smaller_than_a_chunk() -> None:
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("x", max_tokens=10, overlap_tokens=10)


def test_words_are_folded_and_stemmed_for_portuguese() -> None:
    assert fold("AÇÃO Rápida") == "acao rapida"
    assert stems("contratos contrato") == ["contrat", "contrat"]
    assert stems("rescisões rescisão") == ["rescis", "rescis"]
