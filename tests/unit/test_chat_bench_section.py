"""The chat benchmark's ``--write`` replaces its generated table and keeps the notes below it,
and reads the PostgreSQL round trips of a message from libpq's trace."""

from __future__ import annotations

from pathlib import Path

from scripts.bench.chat import Exchanges, write_chat_section
from scripts.bench.support import KEPT_BELOW

OTHER = "## Knowledge base against ChromaDB\n\nits text\n"


def test_the_generated_table_is_replaced_and_the_notes_below_it_kept(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# B\n\n## Chat function\n\nold table\n{KEPT_BELOW}\n\nnotes\n\n{OTHER}")

    write_chat_section(doc, f"## Chat function\n\nnew table\n{KEPT_BELOW}\n")

    assert doc.read_text() == (
        f"# B\n\n## Chat function\n\nnew table\n{KEPT_BELOW}\n\nnotes\n\n{OTHER}"
    )


def test_a_section_without_the_marker_is_replaced_whole(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# B\n\n## Chat function\n\nold\n\n{OTHER}")

    write_chat_section(doc, f"## Chat function\n\nnew\n{KEPT_BELOW}\n")

    assert doc.read_text() == f"# B\n\n## Chat function\n\nnew\n{KEPT_BELOW}\n\n{OTHER}"


def test_round_trips_statements_and_commits_are_read_from_the_trace() -> None:
    trace = [
        'F\t13\tParse\t "" "BEGIN" 0\n',
        'F\t9\tExecute\t "" 0\n',
        'F\t9\tExecute\t "" 0\n',
        "F\t4\tSync\n",
        'B\t10\tCommandComplete\t "BEGIN"\n',
        "B\t5\tReadyForQuery\t T\n",
        'F\t11\tQuery\t "COMMIT"\n',
        'B\t11\tCommandComplete\t "COMMIT"\n',
        "B\t5\tReadyForQuery\t I\n",
    ]
    counted = Exchanges(messages=1)

    counted.add_trace(iter(trace))

    assert (counted.round_trips, counted.statements, counted.commits) == (2, 3, 1)
