from __future__ import annotations

import uuid

import pytest

from lambdas.policies import service
from lambdas.policies.matcher import InvalidMatcher, Subject
from lambdas.policies.models import PolicyDefault, RuleDraft
from lambdas.policies.repository import RuleNotFound
from tests.support.governance_fakes import FakeRuleStore, FakeUnitOfWork

ADMIN = uuid.uuid4()
CPF_RULE = RuleDraft(
    name="CPF needs two approvals",
    priority=10,
    effect="require_approval",
    matcher={"subject_kinds": ["chat.message"], "detectors": ["cpf"]},
    required_approvals=2,
)
CPF_MESSAGE = Subject(kind="chat.message", id="m-1", text="cpf 529.982.247-25")


@pytest.fixture
def uow() -> FakeUnitOfWork[FakeRuleStore]:
    return FakeUnitOfWork(FakeRuleStore())


def test_creating_a_rule_commits_version_one(uow) -> None:
    rule = service.create_rule(uow.factory(), CPF_RULE, actor_id=ADMIN)

    assert rule.version == 1
    assert rule.created_by == ADMIN
    assert uow.committed


def test_an_invalid_matcher_is_refused_before_anything_is_committed(uow) -> None:
    with pytest.raises(InvalidMatcher):
        service.create_rule(
            uow.factory(),
            CPF_RULE.model_copy(update={"matcher": {"detectors": ["rg"]}}),
            actor_id=ADMIN,
        )
    assert not uow.committed
    assert uow.store.versions_by_rule == {}


def test_a_draft_with_inconsistent_approval_settings_is_refused() -> None:
    with pytest.raises(ValueError, match="required_approvals"):
        RuleDraft(name="x", effect="require_approval", matcher={})
    with pytest.raises(ValueError, match="only apply"):
        RuleDraft(name="x", effect="allow", matcher={}, required_approvals=2)
    with pytest.raises(ValueError, match="shorter"):
        RuleDraft(
            name="x",
            effect="require_approval",
            matcher={},
            required_approvals=1,
            approval_ttl_s=600,
            escalate_after_s=600,
        )


def test_updating_keeps_the_history(uow) -> None:
    rule = service.create_rule(uow.factory(), CPF_RULE, actor_id=ADMIN)
    service.update_rule(
        uow.factory(), rule.rule_id, CPF_RULE.model_copy(update={"priority": 50}), actor_id=ADMIN
    )

    history = service.get_rule(uow.factory(), rule.rule_id)

    assert history.rule.version == 2
    assert history.rule.priority == 50
    assert [(v.version, v.is_current) for v in history.versions] == [(2, True), (1, False)]


def test_an_unknown_rule_is_not_found(uow) -> None:
    with pytest.raises(RuleNotFound):
        service.get_rule(uow.factory(), uuid.uuid4())
    with pytest.raises(RuleNotFound):
        service.deactivate_rule(uow.factory(), uuid.uuid4(), actor_id=ADMIN)


def test_deactivating_twice_commits_once(uow) -> None:
    rule = service.create_rule(uow.factory(), CPF_RULE, actor_id=ADMIN)
    commits = uow.commits

    first = service.deactivate_rule(uow.factory(), rule.rule_id, actor_id=ADMIN)
    second = service.deactivate_rule(uow.factory(), rule.rule_id, actor_id=ADMIN)

    assert not first.active
    assert second.version == first.version
    assert uow.commits == commits + 1


def test_a_dry_run_says_which_rule_decided_and_records_a_dry_run(uow) -> None:
    rule = service.create_rule(uow.factory(), CPF_RULE, actor_id=ADMIN)

    result = service.dry_run(uow.factory(), CPF_MESSAGE, actor_id=ADMIN)

    assert result.effect == "require_approval"
    assert (result.rule_id, result.rule_version) == (rule.rule_id, 1)
    assert result.required_approvals == 2
    assert "valid cpf" in result.reason
    assert [m.rule_id for m in result.matched] == [rule.rule_id]
    (_, _, record) = uow.store.evaluations[-1]
    assert record.dry_run
    assert record.id == result.evaluation_id
    assert len(record.inputs_hash) == 64


def test_the_default_decides_when_nothing_matches(uow) -> None:
    service.create_rule(uow.factory(), CPF_RULE, actor_id=ADMIN)
    service.set_default(uow.factory(), PolicyDefault(effect="block"), actor_id=ADMIN)

    result = service.dry_run(
        uow.factory(), Subject(kind="chat.message", text="hello"), actor_id=ADMIN
    )

    assert result.effect == "block"
    assert result.rule_id is None
    assert service.get_default(uow.factory()).effect == "block"


def test_an_inactive_rule_is_not_evaluated(uow) -> None:
    rule = service.create_rule(uow.factory(), CPF_RULE, actor_id=ADMIN)
    service.deactivate_rule(uow.factory(), rule.rule_id, actor_id=ADMIN)

    assert service.dry_run(uow.factory(), CPF_MESSAGE, actor_id=ADMIN).effect == "allow"


def test_changing_the_default_is_recorded_on_the_tenants_settings(uow) -> None:
    setting = PolicyDefault(effect="require_approval", required_approvals=3)

    service.set_default(uow.factory(), setting, actor_id=ADMIN)

    assert uow.recorded == [("policy_settings.changed", str(uow.store.settings_id))]
    assert uow.commits == 1
    default = service.get_default(uow.factory())
    assert (default.effect, default.required_approvals) == ("require_approval", 3)
