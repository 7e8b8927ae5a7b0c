"""What the leads function needs to send outreach e-mail through SES: permission to send as its
verified identity, and nothing else."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam

# SES v2 ``SendEmail`` (what the function calls) and its raw-MIME sibling; both are authorised
# against the identity the From address belongs to.
SEND_ACTIONS = ("ses:SendEmail", "ses:SendRawEmail")


def grant_send_email(role: iam.IRole, *, sender: str, identities: Sequence[str]) -> None:
    """Let ``role`` send from ``sender`` only, as any of ``identities`` (the address, or its
    domain when the operator verified the domain)."""
    stack = Stack.of(role)
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=list(SEND_ACTIONS),
            resources=[
                stack.format_arn(service="ses", resource="identity", resource_name=identity)
                for identity in identities
            ],
            conditions={"StringEquals": {"ses:FromAddress": sender}},
        )
    )
