"""The Lambda context object the local stack hands a handler."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Final

LAMBDA_TIMEOUT_MS: Final = 29_000


@dataclass
class LambdaContextStub:
    """What a Lambda handler reads from its context object."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    deadline_ms: float = field(default_factory=lambda: time.time() * 1000 + LAMBDA_TIMEOUT_MS)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.deadline_ms - time.time() * 1000))
