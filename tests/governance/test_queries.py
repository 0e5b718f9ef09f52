"""Query helpers, and how the service talks to PostgreSQL."""
from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance.models import ApiToken
from governance.queries import by_key
from registry.models import ModelVersion
from tests.factories import Cast


def test_by_key_finds_the_row_or_none_without_an_order_by(cast: Cast) -> None:
    version = cast.versions.get("v1") or ModelVersion.objects.filter(model__name="alpha-model").order_by("version")[0]
    with CaptureQueriesContext(connection) as ctx:
        found = by_key(ModelVersion.objects.select_related("model").filter(model__name="alpha-model",
                                                                             version=version.version))
        missing = by_key(ModelVersion.objects.filter(model__name="alpha-model", version=10_000))
    assert found == version and found.model.name == "alpha-model"  # select_related kept
    assert missing is None
    assert len(ctx.captured_queries) == 2
    for query in ctx.captured_queries:
        assert "ORDER BY" not in query["sql"].upper(), query["sql"]
        assert "LIMIT 1" in query["sql"].upper(), query["sql"]


def test_by_key_on_a_table_with_a_default_ordering_still_has_none(cast: Cast) -> None:
    assert ApiToken._meta.ordering  # the case .first() pays for
    token = ApiToken.objects.order_by("pk")[0]
    with CaptureQueriesContext(connection) as ctx:
        assert by_key(ApiToken.objects.select_related("user", "team").filter(token_hash=token.token_hash)) == token
    assert "ORDER BY" not in ctx.captured_queries[0]["sql"].upper()


@pytest.mark.postgres
def test_postgresql_statements_are_bound_server_side_and_prepared(cast: Cast, client_for: Any) -> None:
    """Each query shape is one statement with parameters; psycopg prepares it after a few runs.

    ``governance.settings`` turns server-side binding on for PostgreSQL; the registration and
    promotion hot path gains about a fifth from it (docs/benchmarks/promotions.md).
    """
    assert connection.settings_dict["OPTIONS"].get("server_side_binding") is True
    client = client_for("viewer")
    for _ in range(8):
        assert client.get("/api/v1/models/alpha-model/").status_code == 200
    raw = connection.connection  # the psycopg connection under Django's wrapper
    assert raw.prepare_threshold is not None
    with raw.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cur.fetchone()[0] > 0, "no statement was prepared after eight identical requests"
