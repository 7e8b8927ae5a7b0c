"""The DynamoDB lease shared by migrations and scheduled jobs (moto)."""

from __future__ import annotations

import time

import boto3
import pytest

from lambdas.shared.locks import DynamoLease, LockBusy

TABLE = "alquimista-test-locks"


@pytest.fixture
def ddb(aws):
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "lock_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "lock_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


def _lease(client, owner: str, **kwargs) -> DynamoLease:
    options = {"lease_s": 30, "wait_s": 0, "sleep": lambda _: None, **kwargs}
    return DynamoLease(client, table=TABLE, lock_id="jobs:expire-trials", owner=owner, **options)


def test_a_lease_is_held_inside_the_block_and_released_after(ddb) -> None:
    lease = _lease(ddb, "runner-a")

    with lease:
        held = lease.current()
        assert held is not None
        assert held["owner"] == "runner-a"
        assert held["expires_at"] > time.time()

    assert lease.current() is None


def test_a_second_runner_is_refused_with_the_holder_named(ddb) -> None:
    with _lease(ddb, "runner-a"), pytest.raises(LockBusy, match="runner-a"):
        _lease(ddb, "runner-b").__enter__()


def test_an_expired_lease_is_taken_over(ddb) -> None:
    ddb.put_item(
        TableName=TABLE,
        Item={
            "lock_id": {"S": "jobs:expire-trials"},
            "owner": {"S": "crashed-runner"},
            "acquired_at": {"N": str(int(time.time()) - 600)},
            "expires_at": {"N": str(int(time.time()) - 1)},
        },
    )
    lease = _lease(ddb, "runner-b")

    with lease:
        assert lease.current()["owner"] == "runner-b"  # type: ignore[index]


def test_release_does_not_delete_a_lease_someone_else_took_over(ddb) -> None:
    lease = _lease(ddb, "runner-a")
    with lease:
        # the lease expired mid-run and another runner took it
        ddb.put_item(
            TableName=TABLE,
            Item={
                "lock_id": {"S": "jobs:expire-trials"},
                "owner": {"S": "runner-b"},
                "expires_at": {"N": str(int(time.time()) + 60)},
            },
        )

    assert lease.current()["owner"] == "runner-b"  # type: ignore[index]


def test_the_lease_is_renewed_while_the_work_lasts(ddb) -> None:
    lease = _lease(ddb, "runner-a", lease_s=3)

    with lease:
        first = lease.current()["expires_at"]  # type: ignore[index]
        time.sleep(2.2)
        renewed = lease.current()["expires_at"]  # type: ignore[index]

    assert renewed > first
