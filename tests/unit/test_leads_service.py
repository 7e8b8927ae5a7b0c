"""The leads services over in-memory fakes: what they decide, and that a refusal commits
nothing."""

from __future__ import annotations

import uuid

import pytest

from lambdas.leads.errors import DuplicateLead, InvalidLead, LeadNotFound, LeadSuppressed
from lambdas.leads.lgpd_service import LgpdService
from lambdas.leads.models import Change, LeadFields, Mutation
from lambdas.leads.preconditions import PreconditionFailed, PreconditionRequired
from lambdas.leads.service import LeadService
from lambdas.leads.suppression import lead_digests
from lambdas.leads.sync_service import SyncService
from lambdas.shared.errors import BadRequest, ValidationFailed
from tests.support.leads_fakes import FakeLeadsUow

KEY = b"unit-test-suppression-key-32bytes!"


@pytest.fixture
def uow() -> FakeLeadsUow:
    return FakeLeadsUow()


def _leads(uow: FakeLeadsUow) -> LeadService:
    return LeadService(uow.factory, suppression_key=KEY)


def test_a_lead_is_created_with_normalised_identifiers(uow) -> None:
    lead = _leads(uow).create(
        LeadFields(
            email=" Ana@Example.COM", phone="(11) 91234-5678", company_tax_id="529.982.247-25"
        )
    )

    assert (lead.email_normalized, lead.phone_e164) == ("ana@example.com", "+5511912345678")
    assert lead.company_tax_id == "52998224725"
    assert uow.commits == 1


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"email": "nope"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"company_tax_id": "1"}, "company_tax_id"),
    ],
)
def test_an_unusable_identifier_is_refused_before_any_write(uow, given, field) -> None:
    with pytest.raises(InvalidLead) as refused:
        _leads(uow).create(LeadFields.model_validate(given))

    assert refused.value.details == [{"loc": [field]}]
    assert (uow.entered, uow.commits) == (0, 0)


def test_a_suppressed_person_is_not_created(uow) -> None:
    uow.suppression.add(
        lead_digests(KEY, email="x@example.com", phone=None), reason="opt_out", added_by=None
    )

    with pytest.raises(LeadSuppressed, match="email"):
        _leads(uow).create(LeadFields(email="X@example.com"))

    assert uow.commits == 0
    assert uow.leads.rows == {}


def test_a_duplicate_names_the_existing_lead(uow) -> None:
    first = _leads(uow).create(LeadFields(phone="11 91234-5678"))

    with pytest.raises(DuplicateLead) as refused:
        _leads(uow).create(LeadFields(phone="+5511912345678"))

    assert refused.value.existing_id == first.id
    assert uow.commits == 1


def test_updates_and_deletes_need_the_version_read(uow) -> None:
    service = _leads(uow)
    lead = service.create(LeadFields(full_name="Ana"))

    with pytest.raises(PreconditionRequired):
        service.update(lead.id, {"status": "won"}, if_match=None)
    with pytest.raises(BadRequest):
        service.update(lead.id, {"status": "won"}, if_match="*")
    assert uow.entered == 1  # refused before opening a unit of work

    updated = service.update(lead.id, {"status": "won"}, if_match='"1"')
    with pytest.raises(PreconditionFailed) as stale:
        service.delete(lead.id, if_match='"1"')
    with pytest.raises(InvalidLead):
        service.update(lead.id, {"status": "bogus"}, if_match='"2"')
    with pytest.raises(LeadNotFound):
        service.update(uuid.uuid4(), {}, if_match='"1"')

    assert updated.version == 2
    assert stale.value.current_version == 2
    assert uow.commits == 2


def _change(n: int) -> Change:
    return Change(entity="lead", id=uuid.uuid4(), op="upsert", version=1, data={"n": n})


def test_the_feed_asks_for_a_resync_only_when_a_purge_passed_the_cursor(uow) -> None:
    service = _leads(uow)
    uow.feed.entries = [(_change(n), 10 + n, n) for n in range(3)]
    first = service.changes(cursor=None, limit=2)
    assert (len(first.changes), first.has_more) == (2, True)

    uow.feed.watermark = (12, 2)  # a purge removed tombstones up to here
    stale = service.changes(cursor=first.cursor, limit=2)
    fresh = service.changes(cursor=stale.cursor, limit=10)

    assert stale.resync_required
    assert stale.changes == []
    assert not fresh.resync_required
    assert [c.data for c in fresh.changes] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_a_push_replays_stored_results_and_stores_conflicts_with_both_versions(uow) -> None:
    leads, sync = _leads(uow), SyncService(uow.factory, suppression_key=KEY)
    lead = leads.create(LeadFields(full_name="Ana"))
    leads.update(lead.id, {"status": "lost"}, if_match='"1"')
    batch = [
        Mutation(
            client_mutation_id="m1",
            op="update",
            id=lead.id,
            base_version=1,
            fields=lead.fields().model_copy(update={"status": "won"}),
        )
    ]

    [first] = sync.push(batch, device_id="d", user_id=None)
    [again] = sync.push(batch, device_id="d", user_id=None)

    assert (first.outcome, first.reason, first.replayed) == ("conflict", "update_update", False)
    assert again.replayed
    assert again.model_dump(exclude={"replayed"}) == first.model_dump(exclude={"replayed"})
    [conflict] = uow.conflicts.rows.values()
    assert (conflict.mine["status"], conflict.theirs["status"]) == ("won", "lost")
    assert len(uow.conflicts.rows) == 1  # the replay stored nothing new

    uow.sync_settings.lww = True
    [lww] = sync.push(
        [batch[0].model_copy(update={"client_mutation_id": "m2"})], device_id="d", user_id=None
    )
    assert (lww.outcome, lww.version) == ("applied", 3)


def test_a_batch_is_bounded(uow) -> None:
    sync = SyncService(uow.factory, suppression_key=KEY)
    with pytest.raises(ValidationFailed):
        sync.push([], device_id="d", user_id=None)
    too_many = [
        Mutation(client_mutation_id=str(n), op="delete", id=uuid.uuid4(), base_version=1)
        for n in range(1001)
    ]
    with pytest.raises(ValidationFailed):
        sync.push(too_many, device_id="d", user_id=None)
    assert uow.entered == 0


def test_erasure_suppresses_first_and_audits_without_personal_data(uow) -> None:
    lead = _leads(uow).create(LeadFields(full_name="Bia Souza", email="bia@example.com"))
    lgpd = LgpdService(uow.factory, suppression_key=KEY)

    request_id = lgpd.erase(lead.id, suppress=True, requested_by=None)

    assert uow.requests.erased == [lead.id]
    assert uow.requests.rows[request_id]["status"] == "completed"
    assert uow.suppression.matches(lead_digests(KEY, email="bia@example.com", phone=None)) == [
        "email"
    ]
    created, entry = uow.audit_log.entries
    assert created["action"] == "lead.created"
    assert entry["action"] == "data_subject_request.completed"
    assert entry["details"]["kind"] == "erasure"
    assert "bia" not in repr(entry).lower()
    with pytest.raises(LeadNotFound):
        lgpd.erase(uuid.uuid4(), suppress=False, requested_by=None)


def test_a_consent_names_purposes_and_text_and_a_valid_ip(uow) -> None:
    lead = _leads(uow).create(LeadFields(full_name="Caio"))
    lgpd = LgpdService(uow.factory, suppression_key=KEY)
    commits = uow.commits

    with pytest.raises(InvalidLead, match="purposes"):
        lgpd.record_consent(lead.id, "granted", channel="form", purposes=[], text_version="v1",
                            ip=None, recorded_by=None)  # fmt: skip
    with pytest.raises(InvalidLead, match="IP"):
        lgpd.record_consent(lead.id, "granted", channel="form", purposes=["m"], text_version="v1",
                            ip="999.1.1.1", recorded_by=None)  # fmt: skip
    event = lgpd.record_consent(lead.id, "granted", channel="form", purposes=["m"],
                                text_version="v1", ip="10.0.0.1", recorded_by=None)  # fmt: skip

    assert event["ip_hmac"] != "10.0.0.1"
    assert len(event["ip_hmac"]) == 64
    assert uow.commits == commits + 1


def test_the_processing_record_lists_every_activity_and_the_tenants_facts(uow) -> None:
    from lambdas.leads import reports_service  # noqa: PLC0415

    lead = _leads(uow).create(LeadFields(full_name="Rui", legal_basis="consent"))
    LgpdService(uow.factory, suppression_key=KEY).record_consent(
        lead.id, "granted", channel="form", purposes=["newsletter"], text_version="v1",
        ip=None, recorded_by=None,
    )  # fmt: skip

    record = reports_service.processing_record(uow.factory, tenant_id=lead.tenant_id)

    assert record.legal_bases_in_use == {"consent": 1}
    assert record.consent_purposes_in_use == ["newsletter"]
    assert {"legal_obligation", "consent", "legitimate_interest"} <= {
        basis for activity in record.activities for basis in activity.legal_bases
    }
    assert all(a.retention and a.recipients and a.data_categories for a in record.activities)


def test_metrics_refuse_a_backward_or_overlong_range(uow) -> None:
    from datetime import date  # noqa: PLC0415

    from lambdas.leads import reports_service  # noqa: PLC0415
    from lambdas.shared.errors import ValidationFailed  # noqa: PLC0415

    with pytest.raises(ValidationFailed):
        reports_service.metrics(uow.factory, day_from=date(2026, 2, 1), day_to=date(2026, 1, 1))
    with pytest.raises(ValidationFailed):
        reports_service.metrics(uow.factory, day_from=date(2024, 1, 1), day_to=date(2026, 1, 1))
    assert reports_service.metrics(uow.factory, day_from=None, day_to=None).items == []
