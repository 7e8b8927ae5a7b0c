"""Policy rules, defaults and evaluations on the real database, as the runtime role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from lambdas.policies.evaluator import RuleSet, inputs_hash
from lambdas.policies.matcher import InvalidMatcher, Subject
from lambdas.policies.models import PolicyDefault, RuleDraft
from lambdas.policies.repository import (
    InvalidRule,
    PolicyRepository,
    RuleChangedConcurrently,
    RuleNotFound,
)
from lambdas.shared.constants import TENANT_SETTING
from tests.support.database import TestDatabase
from tests.support.factories import TestTenant, create_tenant

Conn = psycopg.Connection[dict[str, Any]]

CPF_RULE = RuleDraft(
    name="CPF needs two approvals",
    priority=10,
    effect="require_approval",
    matcher={"subject_kinds": ["chat.message"], "detectors": ["cpf"]},
    required_approvals=2,
    approval_ttl_s=3600,
    escalate_after_s=600,
    escalation_role="admin",
)


@pytest.fixture
def acme(db: TestDatabase) -> TestTenant:
    with db.owner() as conn:
        return create_tenant(conn)


@pytest.fixture
def globex(db: TestDatabase) -> TestTenant:
    with db.owner() as conn:
        return create_tenant(conn)


@contextmanager
def policies(db: TestDatabase, tenant: TestTenant) -> Iterator[PolicyRepository]:
    with db.runtime() as conn:
        conn.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(tenant.id)))
        yield PolicyRepository(conn, tenant.id)
        conn.commit()


def _count_rules(db: TestDatabase) -> int:
    with db.owner() as conn:
        row = conn.execute("SELECT count(*) AS n FROM alquimista_platform.policy_rules").fetchone()
    assert row is not None
    return int(row["n"])


def test_an_edit_creates_a_new_version_and_keeps_the_old_one(db, acme) -> None:
    admin = acme.user("admin").id
    with policies(db, acme) as repo:
        v1 = repo.create(CPF_RULE, actor_id=admin)
    with policies(db, acme) as repo:
        v2 = repo.new_version(
            v1.rule_id,
            CPF_RULE.model_copy(update={"required_approvals": 3}),
            actor_id=admin,
            expected_version=1,
        )
    with policies(db, acme) as repo:
        current = repo.get(v1.rule_id)
        old = repo.get(v1.rule_id, version=1)
        history = repo.versions(v1.rule_id)
        listed = repo.list_rules()

    assert (v1.version, v2.version, v2.rule_id) == (1, 2, v1.rule_id)
    assert current is not None
    assert current.version == 2
    assert current.required_approvals == 3
    assert old is not None
    assert old.required_approvals == 2
    assert not old.is_current
    assert [v.version for v in history] == [2, 1]
    assert [r.version for r in listed] == [2]


def test_a_rule_version_cannot_be_edited_in_place(db, acme) -> None:
    with policies(db, acme) as repo:
        rule = repo.create(CPF_RULE, actor_id=None)

    with db.runtime() as conn:
        conn.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(acme.id)))
        with pytest.raises(psycopg.errors.CheckViolation) as caught:
            conn.execute(
                """
                UPDATE alquimista_platform.policy_rules SET effect = 'allow',
                    required_approvals = NULL, approval_ttl_s = NULL, escalate_after_s = NULL,
                    escalation_role = NULL
                WHERE rule_id = %s
                """,
                (rule.rule_id,),
            )
    assert caught.value.diag.constraint_name == "policy_rules_versions_immutable"


def test_a_stale_edit_is_refused(db, acme) -> None:
    with policies(db, acme) as repo:
        rule = repo.create(CPF_RULE, actor_id=None)
        repo.new_version(rule.rule_id, CPF_RULE, actor_id=None)

    with policies(db, acme) as repo, pytest.raises(RuleChangedConcurrently):
        repo.new_version(rule.rule_id, CPF_RULE, actor_id=None, expected_version=1)


def test_deactivating_adds_an_inactive_version_and_drops_it_from_evaluation(db, acme) -> None:
    with policies(db, acme) as repo:
        rule = repo.create(CPF_RULE, actor_id=None)
        assert [r.rule_id for r in repo.active_rules()] == [rule.rule_id]
        inactive = repo.deactivate(rule.rule_id, actor_id=acme.user("admin").id)
        again = repo.deactivate(rule.rule_id, actor_id=None)
        active = repo.active_rules()
        listed = repo.list_rules(include_inactive=True)

    assert (inactive.version, inactive.active) == (2, False)
    assert again.version == 2  # idempotent
    assert active == []
    assert [(r.version, r.active) for r in listed] == [(2, False)]


def test_an_invalid_matcher_is_never_stored(db, acme) -> None:
    with policies(db, acme) as repo, pytest.raises(InvalidMatcher) as caught:
        repo.create(CPF_RULE.model_copy(update={"matcher": {"patterns": ["(x"]}}), actor_id=None)

    assert caught.value.details
    assert _count_rules(db) == 0


def test_unknown_rules_are_not_found(db, acme) -> None:
    with policies(db, acme) as repo, pytest.raises(RuleNotFound):
        repo.new_version(uuid.uuid4(), CPF_RULE, actor_id=None)


def test_rules_of_another_tenant_are_invisible_and_unusable(db, acme, globex) -> None:
    with policies(db, acme) as repo:
        rule = repo.create(CPF_RULE, actor_id=None)

    with policies(db, globex) as repo:
        assert repo.list_rules() == []
        assert repo.get(rule.rule_id) is None
        assert repo.active_rules() == []
        with pytest.raises(RuleNotFound):
            repo.new_version(rule.rule_id, CPF_RULE, actor_id=None)
    # An evaluation in globex cannot claim acme's rule decided it.
    with policies(db, acme) as repo:
        decision = RuleSet(repo.active_rules()).evaluate(
            Subject(kind="chat.message", id="m", text="cpf 529.982.247-25"), repo.default()
        )
    with policies(db, globex) as repo, pytest.raises(InvalidRule):
        repo.record_evaluation(
            Subject(kind="chat.message", id="m"),
            decision,
            inputs_hash="0" * 64,
            requested_by=None,
        )


def test_an_evaluation_records_the_deciding_version_and_a_hash_not_the_text(db, acme) -> None:
    member = acme.user("member")
    subject = Subject(
        kind="chat.message",
        id="msg-1",
        text="o cpf do cliente é 529.982.247-25",
        requester_roles={"member"},
    )
    with policies(db, acme) as repo:
        repo.create(CPF_RULE, actor_id=None)
        decision = RuleSet(repo.active_rules()).evaluate(subject, repo.default())
        record = repo.record_evaluation(
            subject, decision, inputs_hash=inputs_hash(subject), requested_by=member.id
        )
        fallback = RuleSet([]).evaluate(subject, repo.default())
        by_default = repo.record_evaluation(
            subject, fallback, inputs_hash=inputs_hash(subject), requested_by=None, dry_run=True
        )

    assert record.verdict == "require_approval"
    assert record.rule_version == 1
    assert record.inputs_hash == inputs_hash(subject)
    assert (by_default.rule_id, by_default.rule_version, by_default.verdict) == (
        None,
        None,
        "allow",
    )
    with db.owner() as conn:
        stored = conn.execute(
            "SELECT to_jsonb(e)::text AS doc FROM alquimista_platform.policy_evaluations AS e"
        ).fetchall()
    assert len(stored) == 2
    # the CPF in any spelling, never a fragment: "529" alone turns up in random ids and hashes
    assert all(
        "529.982.247-25" not in row["doc"]
        and "52998224725" not in row["doc"]
        and "cliente" not in row["doc"]
        for row in stored
    )


def test_the_default_effect_is_allow_until_set(db, acme, globex) -> None:
    with policies(db, acme) as repo:
        assert repo.default().effect == "allow"
        repo.set_default(
            PolicyDefault(effect="require_approval", required_approvals=2), actor_id=None
        )
        repo.set_default(PolicyDefault(effect="block"), actor_id=acme.user("admin").id)
    with policies(db, acme) as repo:
        assert repo.default().effect == "block"
    with policies(db, globex) as repo:
        assert repo.default().effect == "allow"


def test_roles_hold_the_policy_and_approval_permissions(db) -> None:
    with db.owner() as conn:
        rows = conn.execute(
            """
            SELECT r.name, array_agg(p.code ORDER BY p.code) AS codes
            FROM alquimista_platform.roles r
            JOIN alquimista_platform.role_permissions rp ON rp.role_id = r.id
            JOIN alquimista_platform.permissions p ON p.id = rp.permission_id
            WHERE p.code LIKE 'policies:%%' OR p.code LIKE 'approvals:%%'
            GROUP BY r.name
            """
        ).fetchall()
    codes = {row["name"]: set(row["codes"]) for row in rows}
    assert {"policies:read", "policies:write", "approvals:read", "approvals:decide"} <= codes[
        "admin"
    ]
    assert "approvals:request" in codes["admin"]
    assert {"policies:read", "approvals:read", "approvals:request"} <= codes["member"]
    assert not {"policies:write", "approvals:decide"} & codes["member"]
    assert not {"policies:write", "approvals:decide", "approvals:request"} & codes["viewer"]
