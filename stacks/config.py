"""Per-environment configuration, read from the CDK context (``cdk.json``) and validated once.

``-c env=dev|prod`` selects the block under the ``alquimista`` context key. The account comes
from ``-c account=...``, else the block, else the CLI's credentials (``CDK_DEFAULT_ACCOUNT``);
``-c alarm_email=...`` overrides the block's alarm address and ``-c outreach_sender=...`` the
leads outreach From address.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from typing import Any, Final, Literal

from aws_cdk import Environment as CdkEnvironment
from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Node

from lambdas.shared.constants import AUDIT_ANCHOR_RETENTION_DAYS, ENVIRONMENTS, Environment

CONTEXT_KEY: Final = "alquimista"
NAT_KINDS: Final = ("gateway", "instance")
FUNCTION_EGRESS: Final = ("endpoints", "nat")
DEFAULT_ENV: Final[Environment] = "dev"
DEFAULT_REGION: Final = "us-east-1"
# One address (no display name): SES authorises the send against its identity or its domain's.
_EMAIL_ADDRESS: Final = re.compile(r"[^@\s<>\"]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}")

_RETENTION: Final[dict[int, logs.RetentionDays]] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
}


class ConfigError(ValueError):
    """The context holds no usable configuration for the selected environment."""


@dataclass(frozen=True, kw_only=True)
class EnvironmentConfig:
    env: Environment
    account: str | None
    region: str
    availability_zones: tuple[str, ...]
    nat_gateways: int
    # "gateway": managed NAT gateways; "instance": a NAT instance (docs/deploy.md, egress).
    nat: Literal["gateway", "instance"] = "gateway"
    nat_instance_type: str = "t4g.nano"
    # "endpoints": functions in isolated subnets reach AWS APIs through interface endpoints and
    # only chat routes out; "nat": functions sit behind the NAT and no interface endpoint is
    # paid for (dev). The database stays in isolated subnets either way.
    function_egress: Literal["endpoints", "nat"] = "endpoints"
    aurora_min_acu: float
    aurora_max_acu: float
    aurora_auto_pause_minutes: int
    aurora_readers: int
    deletion_protection: bool
    backup_retention_days: int
    log_retention_days: int
    alarm_email: str
    cors_origins: tuple[str, ...]
    api_rate_limit: int
    api_burst_limit: int
    api_reserved_concurrency: int
    mfa_required: bool
    master_rotation_days: int
    # COMPLIANCE retention of each audit anchor: no one can delete one sooner.
    audit_anchor_retention_days: int = AUDIT_ANCHOR_RETENTION_DAYS
    # The From address of leads outreach; SES must hold it, or its domain, as a verified
    # identity (docs/deploy.md, "Outreach e-mail").
    outreach_sender: str

    def __post_init__(self) -> None:
        if self.log_retention_days not in _RETENTION:
            raise ConfigError(f"{self.env}: log_retention_days must be one of {sorted(_RETENTION)}")
        if len(self.availability_zones) < 2:
            raise ConfigError(f"{self.env}: Aurora needs subnets in at least two zones")
        if self.nat_gateways < 1:
            raise ConfigError(f"{self.env}: the chat function's egress needs a NAT gateway")
        if self.nat not in NAT_KINDS:
            raise ConfigError(f"{self.env}: nat must be one of {', '.join(NAT_KINDS)}")
        if self.function_egress not in FUNCTION_EGRESS:
            raise ConfigError(
                f"{self.env}: function_egress must be one of {', '.join(FUNCTION_EGRESS)}"
            )
        if not 0 <= self.aurora_min_acu <= self.aurora_max_acu:
            raise ConfigError(f"{self.env}: need 0 <= aurora_min_acu <= aurora_max_acu")
        if self.audit_anchor_retention_days < 1:
            raise ConfigError(f"{self.env}: audit_anchor_retention_days must be at least 1")
        if _EMAIL_ADDRESS.fullmatch(self.outreach_sender) is None:
            raise ConfigError(
                f"{self.env}: outreach_sender must be one e-mail address, "
                f"not {self.outreach_sender!r}"
            )
        if self.aurora_min_acu == 0 and not 5 <= self.aurora_auto_pause_minutes <= 1440:
            raise ConfigError(f"{self.env}: auto-pause must be between 5 and 1440 minutes")

    @property
    def is_production(self) -> bool:
        return self.env == "prod"

    @property
    def removal_policy(self) -> RemovalPolicy:
        """What happens to stateful resources when they leave the template."""
        return RemovalPolicy.RETAIN if self.is_production else RemovalPolicy.DESTROY

    @property
    def outreach_identities(self) -> tuple[str, str]:
        """The SES identities outreach may send as: its address and the address's domain
        (whichever of the two the operator verified)."""
        return self.outreach_sender, self.outreach_sender.rpartition("@")[2].lower()

    @property
    def log_retention(self) -> logs.RetentionDays:
        return _RETENTION[self.log_retention_days]

    @property
    def cdk_environment(self) -> CdkEnvironment:
        return CdkEnvironment(account=self.account, region=self.region)

    def stack_name(self, part: str) -> str:
        return f"Alquimista-{self.env}-{part}"


def selected_environment(node: Node) -> Environment:
    value = node.try_get_context("env") or DEFAULT_ENV
    if value not in ENVIRONMENTS:
        raise ConfigError(f"-c env={value!r}: expected one of {', '.join(ENVIRONMENTS)}")
    env: Environment = value
    return env


def load_config(node: Node, env: Environment | None = None) -> EnvironmentConfig:
    """The configuration of ``env`` (default: the ``-c env=`` context value, else dev)."""
    env = env or selected_environment(node)
    blocks: dict[str, Any] = node.try_get_context(CONTEXT_KEY) or {}
    block = dict(blocks.get(env) or {})
    if not block:
        raise ConfigError(f"cdk.json has no context.{CONTEXT_KEY}.{env} block")
    block["env"] = env
    block.setdefault("region", DEFAULT_REGION)
    block["account"] = (
        node.try_get_context("account")
        or block.get("account")
        or os.environ.get("CDK_DEFAULT_ACCOUNT")
    )
    for overridable in ("alarm_email", "outreach_sender"):
        value = node.try_get_context(overridable)
        if value is not None:
            block[overridable] = str(value)
    known = {field.name for field in fields(EnvironmentConfig)}
    unknown = sorted(set(block) - known)
    if unknown:
        raise ConfigError(f"{env}: unknown configuration keys {unknown}")
    for name in ("availability_zones", "cors_origins"):
        block[name] = tuple(block.get(name) or ())
    try:
        return EnvironmentConfig(**block)
    except TypeError as error:
        raise ConfigError(f"{env}: {error}") from error
