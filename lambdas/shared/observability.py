"""Powertools Logger, Tracer and Metrics shared by every Lambda.

Created at import (they read their configuration lazily from POWERTOOLS_* variables, which is
the documented Powertools pattern); correlation ids come from the API Gateway request id.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

from lambdas.shared.constants import METRICS_NAMESPACE, POWERTOOLS_SERVICE

logger = Logger(service=POWERTOOLS_SERVICE)
tracer = Tracer(service=POWERTOOLS_SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=POWERTOOLS_SERVICE)
