from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from lambdas.shared.constants import TENANT_HEADER
from lambdas.shared.routes import Route
from stacks.nag import acknowledge

DEFAULT_ROUTE_GROUP = "health"
STAGE_NAME = "$default"
CORS_HEADERS = ("authorization", "content-type", TENANT_HEADER, "idempotency-key")

_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
    "sub": "$context.authorizer.claims.sub",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class JsonAccessLogs:
    """One JSON object per request in ``log_group``."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._log_group = log_group

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return apigwv2.LogGroupLogDestination(self._log_group)

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(json.dumps(_ACCESS_LOG_FIELDS))


def route_construct_id(route: Route) -> str:
    words = re.findall(r"[A-Za-z0-9]+", route.path)
    return "Route" + route.method.capitalize() + "".join(w.capitalize() for w in words)


class HttpApiConstruct(Construct):
    """The HTTP API built from the shared route table: one integration per route group, the
    Cognito JWT authorizer on every route the table does not mark public.

    Unmatched requests go to the health function's resolver through an authorized ``$default``
    route, so callers with a token get the platform's JSON 404 instead of API Gateway's body.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env: str,
        routes: Sequence[Route],
        handlers: Mapping[str, lambda_.IFunction],
        user_pool: cognito.IUserPool,
        user_pool_client: cognito.IUserPoolClient,
        cors_origins: Sequence[str],
        rate_limit: int,
        burst_limit: int,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigwv2.HttpApi(
            self,
            "HttpApi",
            api_name=f"alquimista-{env}",
            description="Alquimista platform API",
            create_default_stage=False,
            cors_preflight=self._cors(cors_origins),
        )
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=removal_policy
        )
        self.stage = self._build_stage(rate_limit, burst_limit)
        self.authorizer = authorizers.HttpUserPoolAuthorizer(
            "CognitoJwt", user_pool, user_pool_clients=[user_pool_client]
        )
        self.integrations = {
            group: integrations.HttpLambdaIntegration(f"{group}-integration", handler)
            for group, handler in handlers.items()
        }
        self.routes = {route.route_key: self._build_route(route) for route in routes}
        self.default_route = apigwv2.HttpRoute(
            self,
            "RouteDefault",
            http_api=self.api,
            route_key=apigwv2.HttpRouteKey.DEFAULT,
            integration=self.integrations[DEFAULT_ROUTE_GROUP],
            authorizer=self.authorizer,
        )

    @property
    def url(self) -> str:
        return self.stage.url

    @staticmethod
    def _cors(origins: Sequence[str]) -> apigwv2.CorsPreflightOptions | None:
        if not origins:
            return None
        return apigwv2.CorsPreflightOptions(
            allow_origins=list(origins),
            allow_methods=[apigwv2.CorsHttpMethod.ANY],
            allow_headers=list(CORS_HEADERS),
            max_age=Duration.hours(1),
        )

    def _build_stage(self, rate_limit: int, burst_limit: int) -> apigwv2.HttpStage:
        return apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name=STAGE_NAME,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=rate_limit, burst_limit=burst_limit),
            detailed_metrics_enabled=True,
            access_log_settings=JsonAccessLogs(self.access_logs),
        )

    def _build_route(self, route: Route) -> apigwv2.HttpRoute:
        http_route = apigwv2.HttpRoute(
            self,
            route_construct_id(route),
            http_api=self.api,
            route_key=apigwv2.HttpRouteKey.with_(route.path, apigwv2.HttpMethod[route.method]),
            integration=self.integrations[route.group],
            authorizer=None if route.public else self.authorizer,
        )
        if route.public:
            acknowledge(
                http_route,
                "AwsSolutions-APIG4",
                f"The route table marks {route.route_key} public (no caller identity needed); "
                "stage throttling still applies.",
            )
        return http_route
