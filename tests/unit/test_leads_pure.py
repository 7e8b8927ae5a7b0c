"""The pure parts of leads: normalisation, keyed digests, sync decisions, preconditions and
cursors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from lambdas.leads.cursors import (
    decode_feed_cursor,
    decode_list_cursor,
    encode_feed_cursor,
    encode_list_cursor,
)
from lambdas.leads.normalize import (
    InvalidIdentifier,
    normalize_email,
    normalize_phone,
    normalize_tax_id,
)
from lambdas.leads.preconditions import (
    PreconditionFailed,
    PreconditionRequired,
    etag,
    expected_version,
)
from lambdas.leads.suppression import identifier_hmac, ip_hmac, lead_digests
from lambdas.leads.sync import Apply, ConflictFound, Reject, ServerRow, classify, resolved_fields
from lambdas.shared.errors import BadRequest

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Maria.Silva@Example.COM ", "maria.silva@example.com"),
        ("joão@exámple.com.br", None),  # non-ASCII local part is refused
        ("ana@exámple.com.br", "ana@xn--exmple-qta.com.br"),
    ],
)
def test_emails_are_normalised(raw: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidIdentifier):
            normalize_email(raw)
    else:
        assert normalize_email(raw) == expected


@pytest.mark.parametrize("raw", ["", "no-at-sign", "a@b", "a@@b.com", "a..b@c.com", "@x.com"])
def test_malformed_emails_are_refused_naming_the_field(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_email(raw)
    assert caught.value.field == "email"


@pytest.mark.parametrize(
    "raw",
    ["(11) 91234-5678", "+55 11 91234-5678", "5511912345678", "011912345678", "0 21 11 91234-5678"],
)
def test_brazilian_mobile_numbers_become_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+5511912345678"


def test_landlines_and_foreign_numbers_become_e164() -> None:
    assert normalize_phone("(21) 3456-7890") == "+552134567890"
    assert normalize_phone("+1 (415) 555-0100") == "+14155550100"


@pytest.mark.parametrize("raw", ["123", "(00) 91234-5678", "+55 11 1234", "+0 123", "abc"])
def test_bad_phone_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_phone(raw)
    assert caught.value.field == "phone"


def test_tax_ids_are_checked_by_their_digits() -> None:
    assert normalize_tax_id("529.982.247-25") == ("cpf", "52998224725")
    assert normalize_tax_id("11.222.333/0001-81") == ("cnpj", "11222333000181")
    for bad in ("529.982.247-24", "111.111.111-11", "11.222.333/0001-80", "12"):
        with pytest.raises(InvalidIdentifier):
            normalize_tax_id(bad)


def test_digests_match_across_spellings_and_separate_kinds() -> None:
    assert identifier_hmac(KEY, "phone", "(11) 91234-5678") == identifier_hmac(
        KEY, "phone", "+5511912345678"
    )
    assert identifier_hmac(KEY, "email", "A@B.com") == identifier_hmac(KEY, "email", "a@b.com")
    assert identifier_hmac(KEY, "email", "a@b.com") != identifier_hmac(
        b"x" * 32, "email", "a@b.com"
    )
    digest = identifier_hmac(KEY, "email", "a@b.com")
    assert len(digest) == 64
    assert "a@b.com" not in digest
    assert lead_digests(KEY, email="a@b.com", phone=None) == [("email", digest)]
    assert ip_hmac(KEY, "2001:db8:0:0::1") == ip_hmac(KEY, "2001:db8::1")
    assert ip_hmac(KEY, "10.0.0.1") != digest


def test_a_short_key_or_a_non_ip_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        identifier_hmac(b"short", "email", "a@b.com")
    with pytest.raises(ValueError, match="does not appear"):
        ip_hmac(KEY, "not-an-ip")


ROW = ServerRow(id=uuid.uuid4(), version=3, deleted=False)


def test_a_create_on_a_taken_natural_key_is_a_create_create_conflict() -> None:
    owner = uuid.uuid4()
    assert classify("create", base_version=None, current=None) == Apply()
    assert classify("create", base_version=None, current=None, natural_key_owner=owner) == (
        ConflictFound("create_create", owner)
    )
    assert classify(
        "create", base_version=None, current=None, natural_key_owner=owner, last_writer_wins=True
    ) == ConflictFound("create_create", owner)


def test_a_stale_update_conflicts_unless_the_tenant_chose_last_writer_wins() -> None:
    assert classify("update", base_version=3, current=ROW) == Apply()
    assert classify("update", base_version=2, current=ROW) == ConflictFound("update_update", ROW.id)
    assert classify("update", base_version=2, current=ROW, last_writer_wins=True) == Apply()


def test_updating_a_deleted_row_is_an_update_delete_conflict_even_with_lww() -> None:
    gone = ServerRow(id=ROW.id, version=4, deleted=True)
    for lww in (False, True):
        assert classify("update", base_version=4, current=gone, last_writer_wins=lww) == (
            ConflictFound("update_delete", ROW.id)
        )


def test_deletes_are_idempotent_and_conflict_when_stale() -> None:
    gone = ServerRow(id=ROW.id, version=4, deleted=True)
    assert classify("delete", base_version=1, current=gone) == Apply(noop=True)
    assert classify("delete", base_version=3, current=ROW) == Apply()
    assert classify("delete", base_version=2, current=ROW) == ConflictFound("update_delete", ROW.id)
    assert classify("delete", base_version=2, current=ROW, last_writer_wins=True) == Apply()


def test_mutations_on_missing_rows_or_without_a_version_are_rejected() -> None:
    assert classify("update", base_version=1, current=None) == Reject("not_found")
    assert classify("update", base_version=None, current=ROW) == Reject("invalid")


def test_resolutions_write_what_they_say() -> None:
    editable = frozenset({"full_name", "status"})
    mine = {"full_name": "Ana", "status": "won", "id": "x"}
    theirs = {"full_name": "Ana", "status": "lost"}
    assert resolved_fields(
        "keep_mine", mine=mine, theirs=theirs, merged=None, editable=editable
    ) == {"status": "won"}
    assert (
        resolved_fields("keep_theirs", mine=mine, theirs=theirs, merged=None, editable=editable)
        is None
    )
    assert resolved_fields(
        "merged", mine=mine, theirs=theirs, merged={"status": "qualified"}, editable=editable
    ) == {"status": "qualified"}
    with pytest.raises(ValueError, match="cannot be set"):
        resolved_fields("merged", mine=mine, theirs=theirs, merged={"id": 1}, editable=editable)
    with pytest.raises(ValueError, match="needs"):
        resolved_fields("merged", mine=mine, theirs=theirs, merged=None, editable=editable)
    with pytest.raises(ValueError, match="no merged"):
        resolved_fields("keep_theirs", mine=mine, theirs=theirs, merged={}, editable=editable)


def test_if_match_is_required_and_must_name_one_version() -> None:
    assert etag(7) == '"7"'
    assert expected_version('"7"') == 7
    assert expected_version('W/"7"') == 7
    for missing in (None, "", "  "):
        with pytest.raises(PreconditionRequired):
            expected_version(missing)
    for bad in ("*", '"a"', "7", '"1", "2"', '"0"'):
        with pytest.raises(BadRequest):
            expected_version(bad)
    stale = PreconditionFailed(9)
    assert stale.status == 412
    assert stale.details == [{"current_version": 9}]


def test_cursors_round_trip_and_tampering_is_refused() -> None:
    assert decode_feed_cursor(encode_feed_cursor(123, 45)) == ((123, 45), (0, 0))
    assert decode_feed_cursor(encode_feed_cursor(1, 2, (3, 4))) == ((1, 2), (3, 4))
    when, row = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), uuid.uuid4()
    assert decode_list_cursor(encode_list_cursor(when, row)) == (when, row)
    for bad in ("!!!", "bm90LWpzb24", encode_list_cursor(when, row)):
        with pytest.raises(BadRequest):
            decode_feed_cursor(bad)
    with pytest.raises(BadRequest):
        decode_list_cursor(encode_feed_cursor(1, 2))
