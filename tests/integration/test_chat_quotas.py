"""Token quotas on the real PostgreSQL as the runtime role: the conditional reservation never
takes a tenant past its limit, even under 200 concurrent requests; release, sweep, and the
settlement as production runs it (with the answer, ``ChatUnitOfWork.commit_answer``)."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from lambdas.chat.errors import TokenQuotaExceeded
from lambdas.chat.quota_repository import TokenQuotaRepository, release_stale
from lambdas.chat.unit_of_work import ChatUnitOfWork
from lambdas.shared.scope import NoTransaction, RequestScope
from tests.support.chat import ChatCalls, runtime_database
from tests.support.database import TestDatabase
from tests.support.factories import TestTenant, create_catalog, create_tenant, subscribe

LIMIT = 5_000
TOKENS = 50
REQUESTS = 200


@pytest.fixture
def tenant(owner: psycopg.Connection[Any]):
    return create_tenant(owner)


def _quotas(db: TestDatabase, tenant: TestTenant, **kwargs: int) -> Any:
    database = runtime_database(db)

    class Quotas:
        def __enter__(self):
            conn, _ = database.begin(tenant.id, read_only=False)
            self.conn = conn
            return TokenQuotaRepository(conn, tenant.id, **kwargs)

        def __exit__(self, exc_type, *_):
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()

    return Quotas()


def _usage(owner, tenant) -> dict[str, Any]:
    row = owner.execute(
        "SELECT token_limit, used, reserved FROM chat.token_usage WHERE tenant_id = %s",
        (tenant.id,),
    ).fetchone()
    assert row is not None
    return dict(row)


def test_200_concurrent_reservations_never_exceed_the_limit(db, owner, tenant) -> None:
    # Given a quota of 5,000 tokens and 200 requests of 50 tokens each (twice the quota)
    with _quotas(db, tenant, default_limit=LIMIT) as quotas:
        quotas.set_monthly_limit(LIMIT)
    start = threading.Barrier(REQUESTS + 1)
    connections = threading.BoundedSemaphore(64)  # the server's connections are shared
    granted: list[int] = []
    refused: list[int] = []
    errors: list[BaseException] = []
    over: list[dict[str, Any]] = []
    done = threading.Event()

    def request() -> None:
        start.wait()
        try:
            with connections, psycopg.connect(db.runtime_url, row_factory=dict_row) as conn:
                conn.execute(
                    "SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant.id),)
                )
                quotas = TokenQuotaRepository(conn, tenant.id)
                try:
                    granted.append(quotas.reserve(TOKENS, user_id=None).tokens)
                except TokenQuotaExceeded:
                    refused.append(TOKENS)
                conn.commit()
        except BaseException as error:
            errors.append(error)

    def watch() -> None:
        with psycopg.connect(db.owner_url, autocommit=True) as conn:
            while not done.is_set():
                row = conn.execute(
                    "SELECT token_limit, used, reserved FROM chat.token_usage WHERE tenant_id = %s",
                    (tenant.id,),
                ).fetchone()
                if row and row[1] + row[2] > row[0]:
                    over.append({"used": row[1], "reserved": row[2]})

    # When they all reserve at once
    threads = [threading.Thread(target=request) for _ in range(REQUESTS)]
    watcher = threading.Thread(target=watch)
    for thread in [*threads, watcher]:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join()

    # Then exactly the quota was granted, the rest refused, and the limit was never passed
    assert errors == []
    assert over == []
    assert (len(granted), len(refused)) == (LIMIT // TOKENS, REQUESTS - LIMIT // TOKENS)
    assert _usage(owner, tenant) == {"token_limit": LIMIT, "used": 0, "reserved": LIMIT}
    count = owner.execute(
        "SELECT count(*) AS n FROM chat.token_reservations WHERE tenant_id = %s AND "
        "status = 'reserved'",
        (tenant.id,),
    ).fetchone()
    assert count == {"n": LIMIT // TOKENS}


def _reservation(owner, reservation_id) -> dict[str, Any]:
    row = owner.execute(
        "SELECT status, actual_tokens FROM chat.token_reservations WHERE id = %s",
        (reservation_id,),
    ).fetchone()
    assert row is not None
    return dict(row)


def test_the_answer_settles_its_reservation_to_the_actual_usage_once(db, owner, tenant) -> None:
    # Given 400 tokens reserved for a question
    member = tenant.user("member").id
    chat = ChatCalls(db, tenant.id)
    question = chat.ask(member)
    with _quotas(db, tenant, default_limit=1_000) as quotas:
        reservation = quotas.reserve(400, user_id=member)

    # When its answer, which used 250, is stored, and then stored again with the same reservation
    chat.answer(question, reservation.id, prompt_tokens=200, completion_tokens=50)
    chat.answer(question, reservation.id, prompt_tokens=200, completion_tokens=50)

    # Then the reservation is replaced by the 250 once: settling twice counts once
    assert _usage(owner, tenant) == {"token_limit": 1_000, "used": 250, "reserved": 0}
    assert _reservation(owner, reservation.id) == {"status": "settled", "actual_tokens": 250}
    with _quotas(db, tenant) as quotas:
        assert quotas.current().available == 750


def test_release_gives_the_tokens_back(db, owner, tenant) -> None:
    with _quotas(db, tenant, default_limit=1_000) as quotas:
        first = quotas.reserve(800, user_id=None)
    with _quotas(db, tenant) as quotas, pytest.raises(TokenQuotaExceeded) as refused:
        quotas.reserve(300, user_id=None)
    assert refused.value.details == [{"requested": 300, "available": 200}]
    assert refused.value.code == "token_quota_exceeded"
    with _quotas(db, tenant) as quotas:
        assert quotas.release(first.id) is True
        assert quotas.release(first.id) is False
    with _quotas(db, tenant) as quotas:
        quotas.reserve(300, user_id=None)
    assert _usage(owner, tenant) == {"token_limit": 1_000, "used": 0, "reserved": 300}


def test_the_sweeper_releases_only_stale_reservations(db, owner, tenant) -> None:
    other = create_tenant(owner)
    question = ChatCalls(db, tenant.id).ask(tenant.user("member").id)
    with _quotas(db, tenant, default_limit=1_000) as quotas:
        stale = quotas.reserve(600, user_id=None, ttl_s=1)
        quotas.reserve(100, user_id=None, ttl_s=3600)
    with _quotas(db, other, default_limit=1_000) as quotas:
        quotas.reserve(500, user_id=None, ttl_s=1)
    owner.execute(
        "UPDATE chat.token_reservations SET expires_at = now() - interval '1 minute' "
        "WHERE expires_at < now() + interval '1 minute'"
    )

    # When the sweeper runs as the runtime role
    database = runtime_database(db)
    conn, _ = database.begin(None, read_only=False)
    released = release_stale(conn)
    conn.commit()

    # Then both tenants' stale tokens are free again and the live reservation is kept
    assert released == 2
    assert _usage(owner, tenant) == {"token_limit": 1_000, "used": 0, "reserved": 100}
    assert _usage(owner, other)["reserved"] == 0
    # and a call that finishes after the sweep still counts what it used, without giving back
    # the tokens the sweeper released already
    chat = ChatCalls(db, tenant.id)
    chat.answer(question, stale.id, prompt_tokens=500, completion_tokens=50)
    assert _usage(owner, tenant) == {"token_limit": 1_000, "used": 550, "reserved": 100}
    assert _reservation(owner, stale.id) == {"status": "settled", "actual_tokens": 550}


def test_the_monthly_limit_comes_from_the_plan_unless_overridden(db, owner, tenant) -> None:
    create_catalog(owner)
    subscribe(owner, tenant, "starter")
    plan_quota = owner.execute(
        "SELECT monthly_token_quota FROM public.subscription_plans WHERE slug = 'starter'"
    ).fetchone()["monthly_token_quota"]
    with _quotas(db, tenant, default_limit=7) as quotas:
        quotas.reserve(1, user_id=None)
    assert _usage(owner, tenant)["token_limit"] == (plan_quota if plan_quota is not None else 7)

    with _quotas(db, tenant) as quotas:
        quotas.set_monthly_limit(3)
    with _quotas(db, tenant) as quotas, pytest.raises(TokenQuotaExceeded):
        quotas.reserve(3, user_id=None)


def test_a_tenant_cannot_touch_another_tenants_reservation(db, owner, tenant) -> None:
    other = create_tenant(owner)
    with _quotas(db, tenant, default_limit=1_000) as quotas:
        reservation = quotas.reserve(100, user_id=None)
    with _quotas(db, other, default_limit=1_000) as quotas:
        quotas.reserve(10, user_id=None)  # the other tenant's month is open too
    with _quotas(db, other) as quotas:
        assert quotas.release(reservation.id) is False
    # an answer in the other tenant naming this tenant's reservation settles nothing
    calls = ChatCalls(db, other.id)
    calls.answer(calls.ask(other.user("member").id), reservation.id, prompt_tokens=1,
                 completion_tokens=0)  # fmt: skip
    assert _usage(owner, tenant) == {"token_limit": 1_000, "used": 0, "reserved": 100}
    assert _usage(owner, other) == {"token_limit": 1_000, "used": 0, "reserved": 10}
    assert _reservation(owner, reservation.id) == {"status": "reserved", "actual_tokens": None}


def test_a_reservation_committed_unflushed_holds_at_once_and_only_its_transaction_is_async(
    db, owner, tenant
) -> None:
    # Given the chat unit of work as the runtime role, and a quota of 1,000 tokens
    database = runtime_database(db)
    scope = RequestScope(lambda: database)
    user = tenant.user("member").id
    before = owner.execute("SELECT current_setting('synchronous_commit') AS s").fetchone()
    # When a reservation commits without waiting for the flush
    with ChatUnitOfWork(scope, tenant.id, default_monthly_tokens=1_000) as work:
        work.quotas.reserve(900, user_id=user)
        work.commit_unflushed()
    # Then another connection sees it at once: a second reservation cannot pass the limit
    assert _usage(owner, tenant) == {"token_limit": 1_000, "used": 0, "reserved": 900}
    with pytest.raises(TokenQuotaExceeded), _quotas(db, tenant) as quotas:
        quotas.reserve(200, user_id=user)
    # And the setting was the transaction's alone: the connection's next one waits again
    with ChatUnitOfWork(scope, tenant.id, default_monthly_tokens=1_000) as work:
        after = work.conn.execute("SELECT current_setting('synchronous_commit') AS s").fetchone()
    assert after == before


def test_a_failed_statement_before_an_unflushed_commit_commits_nothing(db, owner, tenant) -> None:
    database = runtime_database(db)
    scope = RequestScope(lambda: database)
    with ChatUnitOfWork(scope, tenant.id, default_monthly_tokens=1_000) as work:
        work.quotas.reserve(100, user_id=tenant.user("member").id)
        with pytest.raises(psycopg.errors.DivisionByZero):
            work.conn.execute("SELECT 1 / 0")
        with pytest.raises(NoTransaction):  # as commit() refuses an aborted transaction
            work.commit_unflushed()
    held = owner.execute(
        "SELECT count(*) AS n FROM chat.token_reservations WHERE tenant_id = %s", (tenant.id,)
    ).fetchone()
    assert held == {"n": 0}


def test_a_reservation_sent_with_its_commit_holds_at_once_and_only_its_transaction_is_async(
    db, owner, tenant
) -> None:
    database = runtime_database(db)
    scope = RequestScope(lambda: database)
    user = tenant.user("member").id
    before = owner.execute("SELECT current_setting('synchronous_commit') AS s").fetchone()
    # Given the month's counter open with 1,000 tokens
    with _quotas(db, tenant, default_limit=1_000) as quotas:
        quotas.release(quotas.reserve(1, user_id=user).id)
    # When 900 are reserved with the COMMIT in the same round trip
    with ChatUnitOfWork(scope, tenant.id, default_monthly_tokens=1_000) as work:
        reservation = work.commit_reservation(900, user_id=user)
        assert work.committed
    # Then another connection sees them at once, and the next transaction waits for its flush
    assert reservation is not None
    assert _usage(owner, tenant) == {"token_limit": 1_000, "used": 0, "reserved": 900}
    with ChatUnitOfWork(scope, tenant.id, default_monthly_tokens=1_000) as work:
        after = work.conn.execute("SELECT current_setting('synchronous_commit') AS s").fetchone()
    assert after == before


def test_a_reservation_sent_with_its_commit_holds_nothing_when_it_cannot(db, owner, tenant) -> None:
    database = runtime_database(db)
    scope = RequestScope(lambda: database)
    user = tenant.user("member").id
    # The month not open yet: nothing reserved, nothing written (``reserve`` opens it)
    with ChatUnitOfWork(scope, tenant.id, default_monthly_tokens=1_000) as work:
        assert work.commit_reservation(100, user_id=user) is None
    assert owner.execute(
        "SELECT count(*) AS n FROM chat.token_usage WHERE tenant_id = %s", (tenant.id,)
    ).fetchone() == {"n": 0}
    # The month open but without room: nothing reserved either
    with _quotas(db, tenant, default_limit=1_000) as quotas:
        quotas.reserve(950, user_id=user)
    with ChatUnitOfWork(scope, tenant.id, default_monthly_tokens=1_000) as work:
        assert work.commit_reservation(100, user_id=user) is None
    assert _usage(owner, tenant) == {"token_limit": 1_000, "used": 0, "reserved": 950}
    held = owner.execute(
        "SELECT count(*) AS n FROM chat.token_reservations WHERE tenant_id = %s", (tenant.id,)
    ).fetchone()
    assert held == {"n": 1}
