"""The per-environment configuration is validated before anything is built."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from aws_cdk import App

from lambdas.shared.routes import ROUTES
from stacks.config import ConfigError, load_config
from stacks.packaging.base import REPO_ROOT
from stacks.platform import check_concurrency


def _app(**extra: object) -> App:
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return App(context={**context, **extra})


def test_an_unknown_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match="staging"):
        load_config(_app(env="staging").node)


def test_the_account_can_come_from_the_command_line() -> None:
    config = load_config(_app(env="prod", account="123456789012").node)
    assert config.account == "123456789012"
    assert config.stack_name("Api") == "Alquimista-prod-Api"


def test_reserved_concurrency_beyond_aurora_connections_is_refused() -> None:
    config = load_config(_app(env="dev").node)
    check_concurrency(config, ROUTES)
    greedy = dataclasses.replace(config, api_reserved_concurrency=10_000)
    with pytest.raises(ConfigError, match="connections"):
        check_concurrency(greedy, ROUTES)


def test_a_configuration_without_nat_is_refused() -> None:
    config = load_config(_app(env="dev").node)
    with pytest.raises(ConfigError, match="NAT"):
        dataclasses.replace(config, nat_gateways=0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("nat", "nat-box", "nat must be one of"), ("function_egress", "vpn", "function_egress")],
)
def test_an_unknown_egress_choice_is_refused(field: str, value: str, message: str) -> None:
    config = load_config(_app(env="dev").node)
    changes: dict[str, Any] = {field: value}  # what cdk.json may hold, whatever the types say
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(config, **changes)


@pytest.mark.parametrize(
    "sender", ["", "prospeccao", "Prospecção <prospeccao@alquimista.ai>", "a@localhost", "a b@x.io"]
)
def test_an_outreach_sender_that_is_not_one_address_is_refused(sender: str) -> None:
    with pytest.raises(ConfigError, match="outreach_sender"):
        load_config(_app(env="prod", outreach_sender=sender).node)


def test_the_outreach_sender_comes_from_the_command_line_and_names_its_identities() -> None:
    config = load_config(_app(env="prod", outreach_sender="vendas@Mail.Example.com.br").node)

    assert config.outreach_sender == "vendas@Mail.Example.com.br"
    assert config.outreach_identities == ("vendas@Mail.Example.com.br", "mail.example.com.br")
