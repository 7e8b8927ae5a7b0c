"""Powertools Logger, Tracer and Metrics shared by every Lambda.

Created at import (they read their configuration lazily from POWERTOOLS_* variables, which is
the documented Powertools pattern); correlation ids come from the API Gateway request id.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

from lambdas.shared.constants import METRICS_NAMESPACE, POWERTOOLS_SERVICE

# The X-Ray SDK patches only what the functions call through: the AWS SDK (Secrets Manager,
# DynamoDB). Its default patches every library it knows that happens to be importable (sqlite3
# among them, imported for that alone); the chat group adds httpx when it arrives.
TRACED_MODULES = ("botocore",)

logger = Logger(service=POWERTOOLS_SERVICE)
tracer = Tracer(service=POWERTOOLS_SERVICE, patch_modules=TRACED_MODULES)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=POWERTOOLS_SERVICE)
