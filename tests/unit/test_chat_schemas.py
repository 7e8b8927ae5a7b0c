"""The chat routes' request bodies: what a client may send, and what it is told when it may not."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lambdas.chat.schemas import CreateDocumentRequest, SendMessageRequest


@pytest.mark.parametrize("content", ["", " ", " \n\t "])
def test_a_message_without_text_is_refused(content: str) -> None:
    with pytest.raises(ValidationError):
        SendMessageRequest(content=content)


def test_a_message_keeps_its_text_as_sent() -> None:
    assert SendMessageRequest(content="  Qual o prazo?\n").content == "  Qual o prazo?\n"


@pytest.mark.parametrize("filename", ["politica.pdf", "A.PDF", "notas.Markdown", "x.htm"])
def test_a_document_of_a_format_extraction_reads_is_accepted(filename: str) -> None:
    assert CreateDocumentRequest(title="Política", filename=filename).filename == filename


@pytest.mark.parametrize(("filename", "named"), [("a.exe", "'.exe'"), ("README", "'(none)'")])
def test_an_unsupported_format_is_named_with_the_accepted_ones(filename: str, named: str) -> None:
    with pytest.raises(ValidationError) as refused:
        CreateDocumentRequest(title="x", filename=filename)

    message = refused.value.errors()[0]["msg"]
    assert f"unsupported file type {named}" in message
    assert ".pdf" in message
    assert ".md" in message


@pytest.mark.parametrize("filename", ["../a.pdf", "dir/a.pdf", "a\\b.pdf", "a\x00.pdf"])
def test_a_filename_is_a_name_not_a_path(filename: str) -> None:
    with pytest.raises(ValidationError):
        CreateDocumentRequest(title="x", filename=filename)


def test_a_title_of_only_whitespace_is_refused() -> None:
    with pytest.raises(ValidationError, match="only whitespace"):
        CreateDocumentRequest(title="   ", filename="a.pdf")
