"""The benchmarks' shared update of docs/benchmarks.md: each rewrites its own section only."""

from __future__ import annotations

from pathlib import Path

from scripts.bench.support import KEPT_BELOW, write_section

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


def test_the_notes_below_the_kept_line_survive_a_rewrite(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        f"# B\n\n## Knowledge\n\nold table\n\n{KEPT_BELOW}\n\n"
        "analysis of the runs\n\n## Next\n\nx\n"
    )

    write_section(doc, f"## Knowledge\n\nnew table\n\n{KEPT_BELOW}\n")
    write_section(doc, "## Knowledge\n\nnewer table\n")  # a section rendered without the line

    assert doc.read_text() == (
        f"# B\n\n## Knowledge\n\nnewer table\n\n{KEPT_BELOW}\n\n"
        "analysis of the runs\n\n## Next\n\nx\n"
    )


def test_a_section_without_the_kept_line_is_replaced_whole(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# B\n\n## Knowledge\n\nold table\n\nold prose\n")

    write_section(doc, f"## Knowledge\n\nnew table\n\n{KEPT_BELOW}\n")

    assert doc.read_text() == f"# B\n\n## Knowledge\n\nnew table\n\n{KEPT_BELOW}\n"
