"""A DynamoDB lease per name in the locks table, for work that only one runner may do at a time
(migrations per environment, scheduled jobs): taken only if free or expired, renewed while the
work lasts, released at the end; DynamoDB's TTL removes abandoned leases."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from lambdas.shared.observability import logger

POLL_INTERVAL_S = 1.0


class LockBusy(RuntimeError):
    """Another runner holds the lock beyond the bounded wait."""


def acquire_within(
    attempt: Callable[[], bool],
    *,
    wait_s: float,
    interval_s: float,
    sleep: Callable[[float], None],
    busy_message: Callable[[], str],
) -> None:
    """Call ``attempt`` until it takes the lock; LockBusy once ``wait_s`` has passed."""
    deadline = time.monotonic() + wait_s
    while not attempt():
        if time.monotonic() >= deadline:
            raise LockBusy(busy_message())
        sleep(interval_s)


class DynamoLease:
    """A named lease in the locks table (key ``lock_id``, TTL attribute ``expires_at``)."""

    def __init__(
        self,
        client: Any,
        *,
        table: str,
        lock_id: str,
        owner: str,
        lease_s: int = 120,
        wait_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table
        self.lock_id = lock_id
        self.owner = owner
        self._lease_s = lease_s
        self._wait_s = wait_s
        self._sleep = sleep
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> Self:
        acquire_within(
            self._try_acquire,
            wait_s=self._wait_s,
            interval_s=POLL_INTERVAL_S,
            sleep=self._sleep,
            busy_message=self._busy_message,
        )
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True)
        self._renewer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={"lock_id": {"S": self.lock_id}},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": self.owner}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            logger.warning("lease was taken over before release", extra=self._ids())

    def _try_acquire(self) -> bool:
        now = int(time.time())
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "lock_id": {"S": self.lock_id},
                    "owner": {"S": self.owner},
                    "acquired_at": {"N": str(now)},
                    "expires_at": {"N": str(now + self._lease_s)},
                },
                ConditionExpression="attribute_not_exists(lock_id) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(now)}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _renew_loop(self) -> None:
        interval = max(1.0, self._lease_s / 3)
        while not self._stop.wait(interval):
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key={"lock_id": {"S": self.lock_id}},
                    UpdateExpression="SET expires_at = :expires",
                    ConditionExpression="#owner = :owner",
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues={
                        ":owner": {"S": self.owner},
                        ":expires": {"N": str(int(time.time()) + self._lease_s)},
                    },
                )
            except Exception:  # a failed renewal must not kill the work; the next one may pass
                logger.exception("could not renew the lease", extra=self._ids())

    def current(self) -> dict[str, Any] | None:
        item = self._client.get_item(
            TableName=self._table, Key={"lock_id": {"S": self.lock_id}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return {
            "owner": item["owner"]["S"],
            "expires_at": int(item["expires_at"]["N"]),
            "acquired_at": int(item.get("acquired_at", {"N": "0"})["N"]),
        }

    def _busy_message(self) -> str:
        held = self.current()
        if held is None:
            who = "a run that has since released it"
        else:
            acquired = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(held["acquired_at"]))
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(held["expires_at"]))
            who = f"owner {held['owner']!r}, since {acquired}, lease expires {expires}"
        return (
            f"lease {self.lock_id!r} in {self._table} is held ({who}); "
            f"gave up after waiting {self._wait_s:g} s"
        )

    def _ids(self) -> dict[str, str]:
        return {"lock_id": self.lock_id, "owner": self.owner}
