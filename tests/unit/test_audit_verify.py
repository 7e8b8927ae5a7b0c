"""The pure verification core: a chain built in memory, then tampered with."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdas.shared.audit import (
    GENESIS_HASH,
    Anchor,
    AuditRow,
    JsonText,
    canonical_json,
    canonical_json_text,
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


# ---- the fast canonicalisation path --------------------------------------------------------

_KEYS = st.text(max_size=8)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["ação", "\U0001f600", "\uffff", "\x00\x1f\x7f", '"\\/', "\u2028"])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


def _jcs_or_error(value: Any) -> bytes | type[Exception]:
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as error:
        return type(error)


def _text_jcs_or_error(text: str) -> bytes | type[Exception]:
    try:
        return canonical_json_text(text)
    except rfc8785.CanonicalizationError as error:
        return type(error)


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(_KEYS, _JSON, max_size=6), ascii_only=st.booleans())
def test_canonical_json_of_a_json_text_is_rfc8785_byte_for_byte(
    value: dict[str, Any], ascii_only: bool
) -> None:
    # Given a document as jsonb prints it (", " and ": ") or escaped to ASCII
    text = json.dumps(value, ensure_ascii=ascii_only)

    # Then the fast path (or its fallback) writes exactly what the library writes
    assert _text_jcs_or_error(text) == _jcs_or_error(json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '{"b": [1, 2, {"z": null, "a": true}], "a": "a\\u00e7\\u00e3o \\u2028 \\u0000 \\""}',
        '{"\\ud83d\\ude00": 1, "\\uffff": 2, "e": 3}',  # escaped keys: UTF-16 order
        '{"n": 9007199254740991, "m": -9007199254740991}',
        '{"x": 1.5, "y": 1e21, "z": -0.0, "w": 10.0}',
        '{"ref_id": "3f0c7a1e-8f7e-4c8e-9a61-0d3c6a5b2f10", "digits": "12345678901234567890"}',
        '{"deep": {"b": [[], [{}]], "a": {"z": "1", "y": 2}}}',
    ],
)
def test_canonical_json_of_a_json_text_matches_the_golden_vectors(text: str) -> None:
    assert canonical_json_text(text) == rfc8785.dumps(json.loads(text))


def test_metadata_read_as_text_verifies_and_an_edit_of_it_is_found() -> None:
    rows = build_chain(4)
    as_text = [row._replace(metadata=JsonText(json.dumps(row.metadata))) for row in rows]
    assert verify_chain(as_text).ok

    as_text[2] = as_text[2]._replace(metadata=JsonText(as_text[2].metadata.replace("3", "4")))
    result = verify_chain(as_text)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert "payload_hash" in (result.reason or "")


def test_metadata_that_is_not_json_fails_verification() -> None:
    rows = build_chain(2)
    rows[1] = rows[1]._replace(metadata=JsonText('{"n": '))

    assert verify_chain(rows).first_bad_seq == 2
