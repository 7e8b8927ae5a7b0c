"""scripts/bench/decisions.py writes a run on top of its section and keeps the earlier ones."""

from __future__ import annotations

from pathlib import Path

from scripts.bench.decisions import write_on_top

DOC = (
    "# Benchmarks\n\n## Other\n\nother\n\n"
    "## Approval decisions\n\nold run\n\nanalysis\n\n## Next\n\nn\n"
)


def test_a_run_goes_on_top_and_the_earlier_runs_stay(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC)

    write_on_top(doc, "## Approval decisions\n\nnew run\n")

    assert doc.read_text() == (
        "# Benchmarks\n\n## Other\n\nother\n\n## Approval decisions\n\nnew run\n\n"
        "**Earlier runs:**\n\nold run\n\nanalysis\n\n## Next\n\nn\n"
    )


def test_a_missing_section_is_appended(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Other\n\nother\n")

    write_on_top(doc, "## Approval decisions\n\nnew run\n")

    assert (
        doc.read_text() == "# Benchmarks\n\n## Other\n\nother\n\n## Approval decisions\n\nnew run\n"
    )
