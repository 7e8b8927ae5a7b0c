from __future__ import annotations

import re
import uuid

import pytest

from lambdas.shared.events import (
    CATALOG,
    InvalidEventPayload,
    UnknownEvent,
    spec_for,
    validated_payload,
)
from scripts import export_events

NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
# Field names that would carry personal data out of PostgreSQL.
PERSONAL = re.compile(r"(email|phone|name|cpf|cnpj|tax|address|message|contact)", re.I)

REQUIRED = {
    "agent.activated", "agent.deactivated", "subscription.created", "subscription.plan_changed",
    "subscription.canceled", "trial.started", "trial.used", "payment.event_applied",
    "payment.event_ignored", "payment.event_received",
    "commercial_request.created", "membership.granted",
}  # fmt: skip


def test_docs_events_md_is_generated_from_the_catalog() -> None:
    assert export_events.main(["--check"]) == 0, "run: uv run python scripts/export_events.py"


def test_the_catalog_holds_every_event_the_writes_emit() -> None:
    assert {spec.name for spec in CATALOG} >= REQUIRED


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: f"{s.name}.v{s.version}")
def test_each_event_keeps_the_convention(spec) -> None:
    assert NAME.fullmatch(spec.name)
    assert spec.version >= 1
    assert spec.name.split(".")[0] in {spec.aggregate_type, spec.aggregate_type.split("_")[0]}
    assert spec.payload.model_config.get("extra") == "forbid"
    personal = [f for f in spec.payload.model_fields if PERSONAL.search(f)]
    assert personal == [], f"{spec.name} carries personal fields {personal}"


def test_names_and_versions_are_unique() -> None:
    keys = [(spec.name, spec.version) for spec in CATALOG]
    assert len(keys) == len(set(keys))


def test_a_stale_events_md_is_caught(tmp_path) -> None:
    stale = tmp_path / "events.md"
    stale.write_text("# Domain events\n")

    assert export_events.main(["--check", "--output", str(stale)]) == 1


def test_validation_names_unknown_versions_and_bad_payloads() -> None:
    agent = str(uuid.uuid4())

    assert validated_payload("agent.deactivated", 1, "agent", {"agent_id": agent}) == {
        "agent_id": agent
    }
    with pytest.raises(UnknownEvent):
        spec_for("agent.deactivated", 2)
    with pytest.raises(InvalidEventPayload):
        validated_payload("trial.used", 1, "trial", {"trial_id": agent})
