from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from lambdas.shared.constants import resource_names
from stacks.nag import acknowledge

TENANT_ATTRIBUTE = "tenant_id"  # appears in tokens as custom:tenant_id (TENANT_CLAIM)


class IdentityConstruct(Construct):
    """The Cognito user pool operators create users in (no self sign-up) and the API's client.

    The client may read but never write ``custom:tenant_id``: a user cannot move themselves to
    another tenant.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env: str,
        mfa_required: bool,
        removal_policy: RemovalPolicy,
        deletion_protection: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = self._build_user_pool(env, mfa_required, deletion_protection)
        self.user_pool.apply_removal_policy(removal_policy)
        self.client = self._build_client()
        if not mfa_required:
            acknowledge(
                self.user_pool,
                "AwsSolutions-COG2",
                "Development only: MFA is optional so operators can script test users and "
                "tokens; production requires TOTP.",
            )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG8",
            "Threat protection needs the Plus feature plan, billed per active user; accounts "
            "are admin-created, MFA and a strong password policy apply. Revisit at scale.",
        )

    def _build_user_pool(
        self, env: str, mfa_required: bool, deletion_protection: bool
    ) -> cognito.UserPool:
        return cognito.UserPool(
            self,
            "UserPool",
            user_pool_name=resource_names(env).user_pool,
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            sign_in_case_sensitive=False,
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True)
            ),
            custom_attributes={TENANT_ATTRIBUTE: cognito.StringAttribute(mutable=True)},
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.REQUIRED if mfa_required else cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.ESSENTIALS,
            deletion_protection=deletion_protection,
        )

    def _build_client(self) -> cognito.UserPoolClient:
        return self.user_pool.add_client(
            "ApiClient",
            auth_flows=cognito.AuthFlow(user_srp=True, user_password=True),
            generate_secret=False,
            prevent_user_existence_errors=True,
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(30),
            enable_token_revocation=True,
            read_attributes=cognito.ClientAttributes()
            .with_standard_attributes(email=True, email_verified=True)
            .with_custom_attributes(TENANT_ATTRIBUTE),
            write_attributes=cognito.ClientAttributes().with_standard_attributes(email=True),
        )
