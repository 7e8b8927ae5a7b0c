"""Every synthesized function's environment is what its settings model reads: the stacks and
the settings cannot drift apart (a renamed, missing or stale variable fails here, not at a
cold start on AWS)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from lambdas.shared.settings import (
    ActivityConsumerSettings,
    ActivitySettings,
    ApiSettings,
    AuditSettings,
    BillingSettings,
    ChatSettings,
    JobSettings,
    LeadsSettings,
    MembersSettings,
    MigrationSettings,
    OutboxRelaySettings,
    environment_variables,
)
from scripts.devstack.aws_resources import LocalResources
from stacks.constants import READ_ONLY_GROUPS, SUPPRESSION_KEY_GROUPS, WEBHOOK_GROUPS
from stacks.events import CONSUMER_HANDLER, RELAY_HANDLER
from stacks.jobs import JOBS_HANDLER
from stacks.knowledge import INGEST_HANDLER
from stacks.lead_imports import IMPORT_HANDLER
from stacks.migrations import MIGRATION_HANDLER
from tests.infrastructure.conftest import Synthesis

# Read by Powertools itself, not by our settings.
POWERTOOLS_PREFIX = "POWERTOOLS_"

# Fields whose default is None switch a feature off. A function must set each of its model's
# such fields, except these, each off on purpose.
OFF_BY_DESIGN: dict[str, dict[str, str]] = {
    "health": {"idempotency_table": "a read-only group has no write to deduplicate"},
    "audit": {"idempotency_table": "a read-only group has no write to deduplicate"},
    "activity": {"idempotency_table": "a read-only group has no write to deduplicate"},
    "outbox": {"idempotency_table": "the relay is no route: nothing to deduplicate"},
    "migrations": {"migrations_dir": "the bundled database/migrations is the default"},
    "leads_import": {
        "outreach_sender": "the CSV ingestion sends no e-mail",
    },
    "chat": {
        "llm_base_url": "unset is OpenAI's endpoint; LLM_BASE_URL points at another provider",
        "llm_api_key": "the key comes from the provider secret (LLM_SECRET_ARN)",
    },
    "chat_ingest": {
        "llm_base_url": "unset is OpenAI's endpoint; LLM_BASE_URL points at another provider",
        "llm_api_key": "the key comes from the provider secret (LLM_SECRET_ARN)",
        "idempotency_table": "an S3 event, no route: a re-ingested original is a duplicate",
    },
}


def _function_name(handler: str) -> str:
    """``lambdas.<name>.handler.lambda_handler`` -> ``<name>``."""
    if handler == INGEST_HANDLER:
        return "chat_ingest"
    if handler == IMPORT_HANDLER:
        return "leads_import"
    return handler.split(".")[1]


_MODEL_BY_HANDLER: dict[str, type[BaseSettings]] = {
    MIGRATION_HANDLER: MigrationSettings,
    JOBS_HANDLER: JobSettings,
    RELAY_HANDLER: OutboxRelaySettings,
    CONSUMER_HANDLER: ActivityConsumerSettings,
    INGEST_HANDLER: ChatSettings,
    IMPORT_HANDLER: LeadsSettings,
}
_MODEL_BY_GROUP: dict[str, type[BaseSettings]] = {
    **dict.fromkeys(WEBHOOK_GROUPS, BillingSettings),
    **dict.fromkeys(SUPPRESSION_KEY_GROUPS, LeadsSettings),
    "audit": AuditSettings,
    "activity": ActivitySettings,
    "members": MembersSettings,
    "chat": ChatSettings,
}


def _settings_model(handler: str) -> type[BaseSettings]:
    """The settings class the handler validates at cold start."""
    by_handler = _MODEL_BY_HANDLER.get(handler)
    if by_handler is not None:
        return by_handler
    return _MODEL_BY_GROUP.get(_function_name(handler), ApiSettings)


def _functions(synthesis: Synthesis) -> dict[str, dict[str, str]]:
    """Each Python function's handler and its environment, with CloudFormation intrinsics
    (``Ref``, ``Fn::ImportValue``...) standing in as their JSON text."""
    functions = {}
    for resource in synthesis.resources("AWS::Lambda::Function").values():
        props = resource["Properties"]
        if not props.get("Runtime", "").startswith("python"):
            continue
        if not props.get("Handler", "").startswith("lambdas."):  # CDK's own custom resources
            continue
        variables: dict[str, Any] = props.get("Environment", {}).get("Variables", {})
        functions[props["Handler"]] = {
            name: value if isinstance(value, str) else json.dumps(value)
            for name, value in variables.items()
        }
    return functions


def _variable_names(model: type[BaseSettings]) -> dict[str, str]:
    """Variable name -> field name, as pydantic-settings reads them (case-insensitively)."""
    return {(field.alias or name).upper(): name for name, field in model.model_fields.items()}


def _load(
    model: type[BaseSettings], variables: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> BaseSettings:
    """The settings as the function's cold start builds them from exactly ``variables``."""
    for name in _variable_names(model):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return model()


def test_every_function_has_a_settings_model_and_the_known_ones_exist(
    synthesis: Synthesis,
) -> None:
    handlers = set(_functions(synthesis))

    assert {MIGRATION_HANDLER, JOBS_HANDLER} <= handlers
    assert {_function_name(h) for h in handlers} >= set(WEBHOOK_GROUPS) | set(READ_ONLY_GROUPS)


def test_each_function_environment_validates_against_its_settings(
    synthesis: Synthesis, monkeypatch: pytest.MonkeyPatch
) -> None:
    for handler, variables in _functions(synthesis).items():
        model = _settings_model(handler)
        try:
            _load(model, variables, monkeypatch)
        except ValidationError as exc:
            pytest.fail(f"{handler}: its environment does not make a {model.__name__}: {exc}")


def test_no_function_gets_a_variable_its_settings_do_not_read(synthesis: Synthesis) -> None:
    for handler, variables in _functions(synthesis).items():
        known = _variable_names(_settings_model(handler))
        stale = sorted(
            name
            for name in variables
            if name.upper() not in known and not name.startswith(POWERTOOLS_PREFIX)
        )
        assert not stale, f"{handler} gets variables nothing reads (renamed?): {stale}"


def test_every_feature_a_function_has_is_switched_on(
    synthesis: Synthesis, monkeypatch: pytest.MonkeyPatch
) -> None:
    for handler, variables in _functions(synthesis).items():
        model = _settings_model(handler)
        settings = _load(model, variables, monkeypatch)
        off = {
            name
            for name, field in model.model_fields.items()
            if field.default is None and getattr(settings, name) is None
        }
        # (the activity consumer shares its package's name but has no such field)
        expected = set(OFF_BY_DESIGN.get(_function_name(handler), {})) & set(model.model_fields)
        assert off == expected, f"{handler}: unset {sorted(off - expected)}"


def test_the_leads_function_gets_the_suppression_key_secret(
    synthesis: Synthesis, monkeypatch: pytest.MonkeyPatch
) -> None:
    (leads,) = [v for h, v in _functions(synthesis).items() if _function_name(h) == "leads"]

    settings = _load(LeadsSettings, leads, monkeypatch)

    assert isinstance(settings, LeadsSettings)
    assert settings.suppression_secret_id is not None
    assert "SuppressionKey" in settings.suppression_secret_id
    assert settings.outreach_sender == synthesis.config["outreach_sender"]


def test_the_billing_function_gets_its_webhook_secret(
    synthesis: Synthesis, monkeypatch: pytest.MonkeyPatch
) -> None:
    (billing,) = [v for h, v in _functions(synthesis).items() if _function_name(h) == "billing"]

    settings = _load(BillingSettings, billing, monkeypatch)

    assert isinstance(settings, BillingSettings)
    for provider in ("stripe", "mercadopago"):
        secret_id = settings.webhook_secret_id(provider)
        assert secret_id is not None
        assert "WebhookSecret" in secret_id


def test_variables_are_named_by_the_settings_and_a_misspelt_field_fails() -> None:
    assert environment_variables(BillingSettings, stripe_webhook_secret_id="arn") == {
        "STRIPE_WEBHOOK_SECRET_ARN": "arn"
    }
    assert environment_variables(ApiSettings, idempotency_table=None) == {}
    with pytest.raises(KeyError, match="webhook_secret"):
        environment_variables(ApiSettings, webhook_secret="arn")


def test_the_local_stack_gives_every_model_what_the_stacks_give_it(monkeypatch) -> None:
    local = LocalResources(
        db_secret_arn="arn:owner",
        runtime_secret_arn="arn:runtime",
        webhook_secret_arns={"stripe": "arn:stripe", "mercadopago": "arn:mercadopago"},
        audit_anchor_bucket="anchors",
        locks_table="locks",
        idempotency_table="idempotency",
    ).lambda_environment("dev")

    for model in (ApiSettings, BillingSettings, JobSettings, MigrationSettings):
        settings = _load(model, local, monkeypatch)
        off = {n for n, f in model.model_fields.items() if f.default is None}
        assert {n for n in off if getattr(settings, n) is None} <= {"migrations_dir"}
    known = set().union(*(_variable_names(m) for m in (BillingSettings, JobSettings, ChatSettings)))
    assert set(local) <= known | set(_variable_names(MigrationSettings))


def test_only_the_jobs_function_may_use_the_locks_table(synthesis: Synthesis) -> None:
    # Migrations are guarded by the advisory lock alone (docs/migrations.md); no API route
    # takes a lease. A grant nobody uses is a permission to misuse.
    holders = {
        name
        for name, policy in synthesis.resources("AWS::IAM::Policy").items()
        if "LocksTable" in json.dumps(policy["Properties"]["PolicyDocument"])
    }

    assert len(holders) == 1, holders
    assert "Jobs" in holders.pop()


def test_the_chat_functions_get_the_documents_bucket_and_the_provider_secret(
    synthesis: Synthesis, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = {h: v for h, v in _functions(synthesis).items() if h.startswith("lambdas.chat.")}
    assert set(chat) == {"lambdas.chat.handler.lambda_handler", INGEST_HANDLER}
    for variables in chat.values():
        settings = _load(ChatSettings, variables, monkeypatch)
        assert isinstance(settings, ChatSettings)
        assert "Documents" in str(settings.documents_bucket)
        assert "LlmApiKey" in str(settings.llm_secret_id)
