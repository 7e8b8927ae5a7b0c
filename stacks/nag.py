"""Acknowledging cdk-nag findings (cdk-nag 3: CDK's native ``Validations.of().acknowledge``).

Every acknowledgment states why the finding does not apply or is accepted.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Accept one finding of ``rule`` (e.g. ``AwsSolutions-IAM5[Resource::*]``) on ``construct``."""
    if len(reason.split()) < 5:
        raise ValueError(f"{rule}: a suppression needs a written reason, not {reason!r}")
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))
