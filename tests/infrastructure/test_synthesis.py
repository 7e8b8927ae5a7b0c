"""The two validators and the shape of the synthesized app, per environment."""

from __future__ import annotations

import functools

from cfnlint.config import ConfigMixIn
from cfnlint.decode.decode import decode_str
from cfnlint.runner.cli import Runner

from tests.infrastructure.conftest import Synthesis

PARTS = ("Network", "Data", "Migrations", "Api", "Monitoring")


@functools.cache
def _cfn_lint() -> Runner:
    """One cfn-lint runner for the run: loading its rules costs as much as linting a small
    template, and ``cfnlint.api.lint_file`` loads them again for every file."""
    return Runner(ConfigMixIn(regions=["us-east-1"]))


def test_each_environment_synthesizes_its_five_stacks(synthesis: Synthesis) -> None:
    assert sorted(synthesis.templates) == sorted(f"Alquimista-{synthesis.env}-{p}" for p in PARTS)


def test_cdk_nag_reports_no_unacknowledged_finding(synthesis: Synthesis) -> None:
    assert synthesis.violations == []
    assert synthesis.error is None


def test_cfn_lint_reports_no_error_on_any_template(synthesis: Synthesis) -> None:
    errors = []
    for name in synthesis.templates:
        text = (synthesis.outdir / f"{name}.template.json").read_text()
        template, parse_errors = decode_str(text)
        assert template is not None, parse_errors
        matches = [*(parse_errors or []), *_cfn_lint().validate_template(template)]
        errors += [f"{name}: {match}" for match in matches if match.rule.id.startswith("E")]
    assert len(synthesis.templates) == len(PARTS)
    assert errors == []


def test_stacks_depend_on_each_other_in_deploy_order(synthesis: Synthesis) -> None:
    artifacts = synthesis.manifest()["artifacts"]

    def depends(part: str) -> set[str]:
        return set(artifacts[f"Alquimista-{synthesis.env}-{part}"].get("dependencies", []))

    prefix = f"Alquimista-{synthesis.env}-"
    assert f"{prefix}Network" in depends("Data")
    assert {f"{prefix}Network", f"{prefix}Data"} <= depends("Migrations")
    # The API's functions wait for the schema custom resource, hence for the whole stack.
    assert f"{prefix}Migrations" in depends("Api")


def test_the_outputs_operators_and_scripts_read_exist(synthesis: Synthesis) -> None:
    outputs = {
        name for template in synthesis.templates.values() for name in template.get("Outputs", {})
    }
    expected = {"ApiUrl", "UserPoolId", "UserPoolClientId", "MigrationFunctionName", "DbSecretArn"}
    assert expected <= outputs
