from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from lambdas.shared.constants import ResourceNames
from stacks.nag import acknowledge


class ProviderSecretsConstruct(Construct):
    """Secrets issued by third parties: created with a random placeholder that operators replace
    with the provider's value (docs/deploy.md)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.webhook_secret = self._build_webhook_secret(names, removal_policy)

    def _build_webhook_secret(
        self, names: ResourceNames, removal_policy: RemovalPolicy
    ) -> secretsmanager.Secret:
        secret = secretsmanager.Secret(
            self,
            "WebhookSecret",
            secret_name=names.webhook_secret,
            description="Signing secret of the payment provider's webhooks",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",  # noqa: S106  # an empty JSON object, no value
                generate_string_key="signing_secret",
                exclude_punctuation=True,
                password_length=48,
            ),
            removal_policy=removal_policy,
        )
        acknowledge(
            secret,
            "AwsSolutions-SMG4",
            "The payment provider issues and rotates this signing secret; operators copy it in.",
        )
        return secret
