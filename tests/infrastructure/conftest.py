"""One synthesis per environment per session: synthesis is the slow part of this tier.

cdk-nag runs the way ``app.py`` runs it (a validation plugin); a failed validation still leaves
the templates and the report in the output directory, so the other tests can run and the nag
test reports the findings.
"""

from __future__ import annotations

from stacks.toolchain import use_project_node

use_project_node()

import fcntl  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from aws_cdk import App, Validations  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from lambdas.shared.routes import ROUTES, Route  # noqa: E402
from stacks.config import load_config  # noqa: E402
from stacks.packaging.base import REPO_ROOT  # noqa: E402
from stacks.platform import build_platform  # noqa: E402

CHAT_ROUTE = Route("POST", "/api/chat/messages", "chat")


@dataclass
class Synthesis:
    env: str
    outdir: Path
    error: str | None
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def violations(self) -> list[tuple[str, str, str]]:
        """(plugin, rule, construct path) of every finding not acknowledged."""
        report = self.outdir / "validation-report.json"
        if not report.exists():
            return []
        found = []
        for plugin in json.loads(report.read_text())["pluginReports"]:
            for violation in plugin["violations"]:
                for construct in violation["violatingConstructs"]:
                    found.append(
                        (plugin["pluginName"], violation["ruleName"], construct["constructPath"])
                    )
        return found

    @property
    def config(self) -> dict[str, Any]:
        """This environment's block of cdk.json."""
        context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
        block: dict[str, Any] = context["alquimista"][self.env]
        return block

    @property
    def interface_endpoints(self) -> bool:
        """Whether this environment's functions sit in isolated subnets behind interface
        endpoints (else behind the NAT; see docs/deploy.md, "The egress trade-off")."""
        return bool(self.config["function_egress"] == "endpoints")

    @property
    def function_subnet(self) -> str:
        """The name fragment of the subnets every function but chat runs in."""
        return "isolatedSubnet" if self.interface_endpoints else "egressSubnet"

    def stack(self, part: str) -> dict[str, Any]:
        return self.templates[f"Alquimista-{self.env}-{part}"]

    def resources(self, resource_type: str, part: str | None = None) -> dict[str, dict[str, Any]]:
        templates = [self.stack(part)] if part else list(self.templates.values())
        return {
            name: resource
            for template in templates
            for name, resource in template.get("Resources", {}).items()
            if resource["Type"] == resource_type
        }

    def manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads((self.outdir / "manifest.json").read_text())
        return manifest


def as_list(value: Any) -> list[Any]:
    """A CloudFormation field that holds one value or a list of them, as a list."""
    return value if isinstance(value, list) else [value]


def synthesize(outdir: Path, env: str, routes: Sequence[Route] = ROUTES) -> Synthesis:
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context.update({"env": env, "aws:cdk:enable-asset-metadata": True})
    app = App(outdir=str(outdir), context=context)
    build_platform(app, load_config(app.node), routes=routes)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    error = None
    try:
        app.synth()
    except RuntimeError as failure:  # validation failures surface as jsii RuntimeErrors
        error = str(failure)
    return _collected(outdir, env, error)


def _collected(outdir: Path, env: str, error: str | None) -> Synthesis:
    synthesis = Synthesis(env=env, outdir=outdir, error=error)
    for path in sorted(outdir.glob("*.template.json")):
        synthesis.templates[path.name.removesuffix(".template.json")] = json.loads(path.read_text())
    return synthesis


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shared_synthesis(
    factory: pytest.TempPathFactory, name: str, env: str, routes: Sequence[Route] = ROUTES
) -> Synthesis:
    """One synthesis per run, also under ``make test``'s workers: the first worker to need it
    synthesizes into the run's shared folder while the others wait, then read its output.
    Synthesis is deterministic, so what they read is what they would have made."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return synthesize(factory.mktemp(f"cdk-{name}"), env, routes)
    run_dir = factory.getbasetemp().parent  # this run's, shared by its workers
    outdir = run_dir / f"cdk-{name}"
    outcome = run_dir / f"cdk-{name}.json"
    with _exclusive(run_dir / f"cdk-{name}.lock"):
        if not outcome.exists():
            made = synthesize(outdir, env, routes)
            outcome.write_text(json.dumps({"error": made.error}))
            return made
    return _collected(outdir, env, json.loads(outcome.read_text())["error"])


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    return shared_synthesis(tmp_path_factory, "dev", "dev")


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    return shared_synthesis(tmp_path_factory, "prod", "prod")


@pytest.fixture(scope="session")
def with_chat(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    """Dev with a chat route added: the chat group is special-cased before it exists."""
    return shared_synthesis(tmp_path_factory, "chat", "dev", routes=(*ROUTES, CHAT_ROUTE))


@pytest.fixture(scope="session", params=["dev", "prod"])
def synthesis(request: pytest.FixtureRequest) -> Synthesis:
    synthesized: Synthesis = request.getfixturevalue(request.param)
    return synthesized
