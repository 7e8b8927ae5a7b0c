"""The benchmarks' shared update of docs/benchmarks.md: each rewrites its own section only."""

from __future__ import annotations

from scripts.bench.support import write_section

DOC = "# Benchmarks\n\n## Migrations\n\nold migrations\n\n## Outbox relay\n\nold relay\n"


def test_a_section_is_replaced_up_to_the_next_one_and_the_rest_is_kept(tmp_path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC)

    write_section(doc, "## Migrations\n\nnew migrations\n")

    assert doc.read_text() == (
        "# Benchmarks\n\n## Migrations\n\nnew migrations\n\n## Outbox relay\n\nold relay\n"
    )


def test_the_last_section_is_replaced_to_the_end(tmp_path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC)

    write_section(doc, "## Outbox relay\n\nnew relay\n")

    assert doc.read_text().endswith("## Outbox relay\n\nnew relay\n")
    assert "old migrations" in doc.read_text()


def test_a_missing_section_or_file_is_appended(tmp_path) -> None:
    doc = tmp_path / "benchmarks.md"

    write_section(doc, "## Audit chain\n\nfirst\n")
    write_section(doc, "## Migrations\n\nsecond\n")

    assert doc.read_text() == "# Benchmarks\n\n## Audit chain\n\nfirst\n\n## Migrations\n\nsecond\n"
