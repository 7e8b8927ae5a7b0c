from __future__ import annotations

from typing import Any

import pytest

from scripts import migrate


class _FakeCloudFormation:
    def __init__(self, stacks: list[dict[str, Any]]) -> None:
        self._stacks = stacks

    def get_paginator(self, name: str) -> Any:
        assert name == "describe_stacks"
        stacks = self._stacks

        class _Paginator:
            def paginate(self) -> list[dict[str, Any]]:
                return [{"Stacks": stacks[:1]}, {"Stacks": stacks[1:]}]

        return _Paginator()


def test_the_function_is_found_by_the_stack_output_of_its_environment() -> None:
    cfn = _FakeCloudFormation(
        [
            {
                "StackName": "Alquimista-prod-Data",
                "Outputs": [{"OutputKey": "MigrationFunctionName", "OutputValue": "prod-fn"}],
            },
            {"StackName": "Alquimista-dev-Network", "Outputs": []},
            {
                "StackName": "Alquimista-dev-Data",
                "Outputs": [{"OutputKey": "MigrationFunctionName", "OutputValue": "dev-fn"}],
            },
        ]
    )

    assert migrate.find_function_name(cfn, "dev") == "dev-fn"
    with pytest.raises(migrate.CommandError, match="Alquimista-staging-"):
        migrate.find_function_name(cfn, "staging")


def test_baseline_needs_a_version(capsys) -> None:
    with pytest.raises(SystemExit):
        migrate.parse_args(["baseline", "--local"])
    assert "--version" in capsys.readouterr().err
