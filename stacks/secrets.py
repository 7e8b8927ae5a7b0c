from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from lambdas.shared.constants import WEBHOOK_PROVIDERS, ResourceNames
from stacks.nag import acknowledge

_PROVIDER_LABELS = {"stripe": "Stripe", "mercadopago": "Mercado Pago"}


class ProviderSecretsConstruct(Construct):
    """Secrets issued by third parties, one per payment provider: created with a random
    placeholder that operators replace with the provider's value (docs/deploy.md)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.webhook_secrets: dict[str, secretsmanager.Secret] = {
            provider: self._build_webhook_secret(provider, names, removal_policy)
            for provider in WEBHOOK_PROVIDERS
        }

    def _build_webhook_secret(
        self, provider: str, names: ResourceNames, removal_policy: RemovalPolicy
    ) -> secretsmanager.Secret:
        label = _PROVIDER_LABELS[provider]
        secret = secretsmanager.Secret(
            self,
            f"{label.replace(' ', '')}WebhookSecret",
            secret_name=names.webhook_secret(provider),
            description=f'Signing secret of {label}\'s webhooks ({{"webhook_secret": ...}})',
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",  # noqa: S106  # an empty JSON object, no value
                generate_string_key="webhook_secret",
                exclude_punctuation=True,
                password_length=48,
            ),
            removal_policy=removal_policy,
        )
        acknowledge(
            secret,
            "AwsSolutions-SMG4",
            f"{label} issues and rotates this signing secret; operators copy it in.",
        )
        return secret


class SuppressionKeyConstruct(Construct):
    """The leads' HMAC key (``{"hmac_key": ...}``): digests of suppressed e-mails and phones
    and of consent IPs. Generated once and never rotated: a new key would stop every stored
    digest from matching, letting suppressed people be imported and contacted again."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            secret_name=names.leads_suppression_secret,
            description='Leads suppression and consent-IP HMAC key ({"hmac_key": ...})',
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",  # noqa: S106  # an empty JSON object, no value
                generate_string_key="hmac_key",
                exclude_punctuation=True,
                password_length=64,
            ),
            removal_policy=removal_policy,
        )
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "Rotating the HMAC key would unmatch every stored suppression digest (LGPD opt-outs).",
        )
