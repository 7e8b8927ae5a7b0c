"""The pure verification core: a chain built in memory, then tampered with."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785

from lambdas.shared.audit import (
    GENESIS_HASH,
    Anchor,
    AuditRow,
    canonical_json,
    payload_hash,
    record_json,
    row_hash,
    verify_chain,
)

TENANT = uuid.uuid4()
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def build_chain(count: int) -> list[AuditRow]:
    rows: list[AuditRow] = []
    previous = GENESIS_HASH
    for seq in range(1, count + 1):
        metadata = {"agent_id": str(uuid.uuid4()), "n": seq}
        draft = AuditRow(
            id=uuid.uuid4(),
            tenant_id=TENANT,
            seq=seq,
            occurred_at=START + timedelta(seconds=seq),
            actor_id=uuid.uuid4(),
            actor_type="user",
            action="agent.activated",
            resource_type="agent",
            resource_id=f"agent-{seq}",
            outcome="success",
            request_id=None,
            metadata=metadata,
            prev_hash=previous,
            payload_hash=payload_hash(metadata),
            row_hash=b"",
        )
        previous = row_hash(previous, record_json(draft))
        rows.append(draft._replace(row_hash=previous))
    return rows


def anchor_of(row: AuditRow) -> Anchor:
    return Anchor(TENANT, row.seq, row.row_hash.hex(), START + timedelta(days=1))


def test_an_untouched_chain_verifies_with_its_anchor() -> None:
    rows = build_chain(10)

    result = verify_chain(rows, anchors=[anchor_of(rows[-1])])

    assert (result.ok, result.checked, result.last_seq) == (True, 10, 10)
    assert result.last_hash == rows[-1].row_hash.hex()


def test_an_edited_field_is_found_at_its_seq() -> None:
    rows = build_chain(6)
    rows[3] = rows[3]._replace(outcome="denied")

    result = verify_chain(rows)

    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 3)


def test_an_edited_payload_is_found_at_its_seq() -> None:
    rows = build_chain(3)
    rows[1] = rows[1]._replace(metadata={**rows[1].metadata, "n": 99})

    assert verify_chain(rows).first_bad_seq == 2


def test_a_deleted_middle_row_is_found_at_its_seq() -> None:
    rows = build_chain(6)
    del rows[2]

    result = verify_chain(rows)

    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert "missing" in (result.reason or "")


def test_swapped_rows_are_found_at_the_first() -> None:
    rows = build_chain(6)
    rows[1], rows[2] = rows[2], rows[1]

    assert verify_chain(rows).first_bad_seq == 2


def test_swapped_rows_with_swapped_seqs_are_found_at_the_first() -> None:
    rows = build_chain(6)
    second, third = rows[1], rows[2]
    rows[1], rows[2] = third._replace(seq=2), second._replace(seq=3)

    assert verify_chain(rows).first_bad_seq == 2


def test_a_deleted_tail_is_found_only_against_the_anchor() -> None:
    rows = build_chain(5)
    anchor = anchor_of(rows[-1])

    assert verify_chain(rows[:-1]).ok
    result = verify_chain(rows[:-1], anchors=[anchor])
    assert (result.ok, result.first_bad_seq, result.last_seq) == (False, 5, 4)


def test_an_anchor_past_the_checked_range_is_not_held_against_it() -> None:
    rows = build_chain(5)

    result = verify_chain(rows[:3], to_seq=3, anchors=[anchor_of(rows[-1])])

    assert result.ok


def test_a_range_starts_from_the_previous_rows_hash() -> None:
    rows = build_chain(8)

    good = verify_chain(rows[4:], from_seq=5, prev_hash=rows[3].row_hash)
    bad = verify_chain(rows[4:], from_seq=5, prev_hash=rows[2].row_hash)

    assert (good.ok, good.checked) == (True, 4)
    assert (bad.ok, bad.first_bad_seq) == (False, 5)


def test_a_chain_rewritten_from_a_row_on_is_caught_by_an_anchor_of_its_old_head() -> None:
    rows = build_chain(4)
    anchor = anchor_of(rows[-1])
    forged = build_chain(4)  # a consistent chain with other contents

    assert verify_chain(forged).ok
    assert verify_chain(forged, anchors=[anchor]).first_bad_seq == 4


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"b": [1, 2, {"z": None, "a": True}], "a": 'ação \u2028 \x00 \x1f \x7f "\\ 😀'},
        {"é": 1, "e": 2, "\U0001f600": 3, "\uffff": 4},  # non-ASCII keys: UTF-16 order
        {"x": 1.5, "y": 1e21, "z": -0.0},  # floats go through the library
        [2**53 - 1, -(2**53 - 1)],
    ],
)
def test_canonical_json_is_rfc8785(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)
