"""What the gate reads, and what it reuses (``lambdas.policies.compiled``): the tenant's rules and
default in one query, once per request; rules compiled once per version, never shared between
tenants."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from lambdas.policies.compiled import RuleCompiler
from lambdas.policies.models import PolicyDefault, RuleDraft
from lambdas.policies.repository import PoliciesUnitOfWork, PolicyRepository
from lambdas.policies.subject import Subject
from lambdas.shared import gate
from lambdas.shared.db import UnitOfWork
from lambdas.shared.runtime import get_runtime
from lambdas.shared.scope import RequestScope
from scripts.devstack.aws_resources import LocalResources
from tests.integration.conftest import World
from tests.support.events import http_event
from tests.support.factories import TestTenant
from tests.support.round_trips import counting_round_trips

Conn = psycopg.Connection[dict[str, Any]]
CPF_TEXT = "o CPF do cliente é 529.982.247-25"


def _scope(tenant: TestTenant, role: str = "admin") -> RequestScope:
    """A request scope authorized as ``tenant``'s ``role``, as a route has one."""
    scope = get_runtime().request_scope(request_id=str(uuid.uuid4()), read_only=False)
    event = http_event("POST", "/api/approvals", claims=tenant.user(role).claims())
    scope.authorize(event, "approvals:request")
    return scope


def _draft(name: str, effect: str, matcher: dict[str, Any], **extra: Any) -> RuleDraft:
    return RuleDraft.model_validate({"name": name, "effect": effect, "matcher": matcher, **extra})


def _create(tenant: TestTenant, draft: RuleDraft) -> uuid.UUID:
    """Store ``draft`` in its own request, as the policies route does."""
    with PoliciesUnitOfWork(_scope(tenant), tenant.id) as uow:
        rule = uow.policies.create(draft, actor_id=None)
        uow.commit()
    return rule.rule_id


def _authorize(uow: UnitOfWork, text: str = "olá") -> gate.GateDecision:
    return gate.authorize(
        uow, Subject(kind="chat.message", id=str(uuid.uuid4()), text=text), summary="test"
    )


def test_the_rules_and_the_default_are_read_in_one_query(
    world: World, lambda_env: LocalResources
) -> None:
    tenant = world.a
    _create(tenant, _draft("cpf", "block", {"detectors": ["cpf"]}))
    _create(tenant, _draft("off", "block", {"keywords": ["x"]}, active=False))
    with PoliciesUnitOfWork(_scope(tenant), tenant.id) as uow:
        uow.policies.set_default(
            PolicyDefault(effect="require_approval", required_approvals=2), actor_id=None
        )
        uow.commit()

    with UnitOfWork(_scope(tenant), tenant.id) as uow:
        repo = PolicyRepository(uow.conn, tenant.id)
        with counting_round_trips(uow.conn) as trips:
            policy = repo.load_policy(RuleCompiler())

        assert len(trips) == 1
        assert [r.name for r in policy.rules.rules] == ["cpf"]
        assert (policy.default.effect, policy.default.required_approvals) == (
            "require_approval",
            2,
        )
        assert policy.default == repo.default()
        assert policy.evaluate(Subject(kind="chat.message", text=CPF_TEXT)).effect == "block"


def test_a_tenant_with_no_rules_and_no_setting_gets_the_allow_default(
    world: World, lambda_env: LocalResources
) -> None:
    with UnitOfWork(_scope(world.b), world.b.id) as uow:
        policy = PolicyRepository(uow.conn, world.b.id).load_policy(RuleCompiler())

    assert policy.rules.rules == ()
    assert (policy.default.effect, policy.default.required_approvals) == ("allow", 1)


def test_a_request_reads_the_policy_once_and_the_next_request_reads_it_again(
    world: World, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    tenant = world.a
    scope = _scope(tenant, "member")
    with UnitOfWork(scope, tenant.id) as uow:
        first = _authorize(uow, CPF_TEXT)
        # When another writer commits a blocking rule meanwhile
        PolicyRepository(owner_conn, tenant.id).create(
            _draft("cpf", "block", {"detectors": ["cpf"]}), actor_id=None
        )
        owner_conn.commit()
        with counting_round_trips(uow.conn) as trips:
            second = _authorize(uow, CPF_TEXT)
        uow.commit()

    # Then this request kept the policy it read (the second evaluation only wrote its row)
    assert (first.verdict, second.verdict) == ("allow", "allow")
    assert len(trips) == 1
    # And the next request reads the rules again
    with UnitOfWork(_scope(tenant, "member"), tenant.id) as uow:
        assert _authorize(uow, CPF_TEXT).verdict == "blocked"


def test_a_policy_change_committed_in_the_request_is_seen_by_its_next_evaluation(
    world: World, lambda_env: LocalResources
) -> None:
    tenant = world.a
    scope = _scope(tenant)
    with UnitOfWork(scope, tenant.id) as uow:
        assert _authorize(uow).verdict == "allow"
        uow.commit()

    with PoliciesUnitOfWork(scope, tenant.id) as uow:
        uow.policies.set_default(PolicyDefault(effect="block"), actor_id=None)
        uow.commit()

    with UnitOfWork(scope, tenant.id) as uow:
        assert _authorize(uow).verdict == "blocked"


def test_compiled_rules_are_reused_while_their_versions_are_unchanged(
    world: World, lambda_env: LocalResources
) -> None:
    tenant = world.a
    kept = _create(tenant, _draft("kept", "block", {"keywords": ["segredo"]}))
    edited = _create(tenant, _draft("edited", "block", {"keywords": ["sigilo"]}))
    compiler = RuleCompiler()

    def load() -> Any:
        with UnitOfWork(_scope(tenant), tenant.id) as uow:
            return PolicyRepository(uow.conn, tenant.id).load_policy(compiler)

    first, again = load(), load()
    assert again.rules is first.rules
    assert (compiler.parsed, compiler.built) == (2, 1)

    # When one rule gets a new version
    with PoliciesUnitOfWork(_scope(tenant), tenant.id) as uow:
        uow.policies.new_version(
            edited, _draft("edited", "allow", {"keywords": ["sigilo"]}), actor_id=None
        )
        uow.commit()
    changed = load()

    # Then the set is built again, parsing only the new version
    assert changed.rules is not first.rules
    assert (compiler.parsed, compiler.built) == (3, 2)
    assert {(r.rule_id, r.version, r.effect) for r in changed.rules.rules} == {
        (kept, 1, "block"),
        (edited, 2, "allow"),
    }


def test_tenants_never_share_compiled_rules(
    world: World, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    # Given tenant b holds a rule with tenant a's rule id and version (possible: the key is
    # per tenant) but another effect
    rule_id = _create(world.a, _draft("same", "block", {}))
    owner_conn.execute(
        """
        INSERT INTO alquimista_platform.policy_rules
            (tenant_id, rule_id, version, name, effect, matcher)
        VALUES (%s, %s, 1, 'same', 'allow', '{}')
        """,
        (world.b.id, rule_id),
    )
    owner_conn.commit()
    compiler = RuleCompiler()

    # When both tenants' policies are loaded through one compiler
    verdicts = {}
    for tenant in (world.a, world.b):
        with UnitOfWork(_scope(tenant), tenant.id) as uow:
            policy = PolicyRepository(uow.conn, tenant.id).load_policy(compiler)
        verdicts[tenant.id] = policy.evaluate(Subject(kind="chat.message")).effect

    # Then each gets its own
    assert verdicts == {world.a.id: "block", world.b.id: "allow"}
    assert compiler.parsed == 2


def test_the_approval_request_takes_the_deciding_versions_expiry_and_escalation(
    world: World, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    tenant = world.a
    _create(
        tenant,
        _draft(
            "cpf needs approval",
            "require_approval",
            {"detectors": ["cpf"]},
            required_approvals=2,
            approval_ttl_s=3600,
            escalate_after_s=600,
            escalation_role="admin",
        ),
    )
    before = datetime.now(UTC)
    with UnitOfWork(_scope(tenant, "member"), tenant.id) as uow:
        decision = _authorize(uow, CPF_TEXT)
        uow.commit()

    row = owner_conn.execute(
        """
        SELECT required_approvals, expires_at, escalate_at, escalation_role
        FROM alquimista_platform.approval_requests WHERE id = %s
        """,
        (decision.approval_id,),
    ).fetchone()
    assert decision.verdict == "pending"
    assert row is not None
    assert row["required_approvals"] == 2
    assert row["escalation_role"] == "admin"
    assert timedelta(minutes=59) < row["expires_at"] - before < timedelta(minutes=61)
    assert timedelta(minutes=9) < row["escalate_at"] - before < timedelta(minutes=11)
