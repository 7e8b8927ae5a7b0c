#!/usr/bin/env python3
"""The CDK app: ``npx aws-cdk synth|deploy -c env=dev|prod`` (see docs/deploy.md)."""

from __future__ import annotations

from stacks.toolchain import use_project_node

use_project_node()

from aws_cdk import App, Validations  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from stacks.config import load_config  # noqa: E402
from stacks.platform import build_platform  # noqa: E402


def main() -> None:
    app = App()
    build_platform(app, load_config(app.node))
    # cdk-nag 3 packs are CDK policy-validation plugins: unacknowledged findings fail synthesis.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
