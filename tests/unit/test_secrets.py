from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

from lambdas.shared.secrets import DbCredentials


def test_aurora_secret_becomes_a_connection_string_with_options() -> None:
    creds = DbCredentials.model_validate(
        {
            "host": "db.internal",
            "port": 6432,
            "dbname": "alq",
            "username": "app",
            "password": "p w'd",
            "engine": "postgres",
            "dbClusterIdentifier": "ignored",
        }
    )

    parsed = conninfo_to_dict(
        creds.conninfo(connect_timeout=2, application_name="alquimista-test", options=None)
    )

    assert parsed == {
        "host": "db.internal",
        "port": "6432",
        "dbname": "alq",
        "user": "app",
        "password": "p w'd",
        "connect_timeout": "2",
        "application_name": "alquimista-test",
    }
    assert "p w'd" not in repr(creds)
