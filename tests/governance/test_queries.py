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


def _fields(obj: Any) -> dict[str, Any]:
    return {k: v for k, v in obj.__dict__.items() if k != "_state"}


def _same_rows(compiled: list[Any], orm: list[Any], related: tuple[str, ...] = (), annotations: tuple[str, ...] = ()) \
        -> None:
    assert [o.pk for o in compiled] == [o.pk for o in orm] and orm
    for a, b in zip(compiled, orm):
        assert type(a) is type(b) and _fields(a).keys() == _fields(b).keys()
        for key in _fields(b):
            assert _fields(a)[key] == _fields(b)[key], key
        assert a._state.adding is False and a._state.db == b._state.db
        for name in related:  # select_related: on the instance already, equal field by field
            assert type(b)._meta.get_field(name).is_cached(a)
            assert _fields(getattr(a, name)) == _fields(getattr(b, name)), name
        for name in annotations:
            assert getattr(a, name) == getattr(b, name), name


def test_a_compiled_read_returns_what_the_queryset_returns(cast: Cast) -> None:
    """Model rows, select_related rows, annotations, deferred fields, JSON, datetimes and NULLs."""
    from django.db.models import F, Q
    from django.utils import timezone

    from governance.queries import Compiled
    from monitoring.models import Report
    from registry.models import StageAssignment

    version = cast.versions["alpha2"]
    for kind, result in (("validation", {"metrics": {"accuracy": 0.9}, "nested": [1, None, "x"]}), ("drift", None)):
        Report.objects.create(version=version, kind=kind, status="succeeded" if result else "queued",
                              options={"a": [1, 2]}, result=result, evaluation=cast.datasets["alpha"],
                              finished_at=timezone.now() if result else None)

    def reports(version_id: int) -> Any:
        return (Report.objects.filter(version_id=version_id).order_by("created_at", "id")
                .annotate(evaluation_sha256=F("evaluation__sha256"), current_sha256=F("current__sha256")))
    _same_rows(Compiled("t-reports", reports, version_id=int).all(version_id=version.pk),
               list(reports(version.pk)), annotations=("evaluation_sha256", "current_sha256"))

    token = ApiToken.objects.select_related("user", "team").order_by("pk")[0]

    def tokens(token_hash: str) -> Any:
        return ApiToken.objects.select_related("user", "team").filter(token_hash=token_hash).order_by()[:1]
    read = Compiled("t-token", tokens, token_hash=str)
    _same_rows([read.one(token_hash=token.token_hash)], list(tokens(token.token_hash)), related=("user",))
    assert read.one(token_hash="no-such-hash") is None

    def deferred(name: str) -> Any:
        return ModelVersion.objects.filter(model__name=name).defer("parameters", "metrics").order_by("-version")
    got = Compiled("t-deferred", deferred, name=str).all(name="alpha-model")
    _same_rows(got, list(deferred("alpha-model")))
    assert got[0].get_deferred_fields() == {"parameters", "metrics"}

    def stints(model_id: int, version_id: int, stage: str) -> Any:
        return StageAssignment.objects.filter(Q(version_id=version_id) | Q(stage=stage), model_id=model_id,
                                              ended_at__isnull=True).select_related("version").order_by("id")
    v1 = cast.versions["alpha1"]
    expected = list(stints(v1.model_id, v1.pk, "production"))
    if expected:
        _same_rows(Compiled("t-stints", stints, model_id=int, version_id=int, stage=str)
                   .all(model_id=v1.model_id, version_id=v1.pk, stage="production"), expected, related=("version",))


def test_a_compiled_read_is_compiled_once_per_connection_and_its_queries_are_counted(cast: Cast) -> None:
    from governance.queries import Compiled

    built = []

    def versions(name: str, number: int) -> Any:
        built.append((name, number))
        return ModelVersion.objects.filter(model__name=name, version=number).order_by()[:1]
    read = Compiled("t-once", versions, name=str, number=int)
    v1, v2, b1 = cast.versions["alpha1"], cast.versions["alpha2"], cast.versions["beta1"]
    with CaptureQueriesContext(connection) as ctx:
        assert read.one(name="alpha-model", number=v1.version) == v1
        assert read.one(name="alpha-model", number=v2.version) == v2
        assert read.one(name=b1.model.name, number=b1.version) == b1
    assert len(built) == 1  # with the sentinels, never with real values
    assert len(ctx.captured_queries) == 3  # each run is a query like any other (query budgets count it)
    assert "LIMIT 1" in ctx.captured_queries[0]["sql"].upper()


def test_a_compiled_read_refuses_sql_that_would_depend_on_its_values(cast: Cast) -> None:
    from governance.queries import Compiled

    ignored = Compiled("t-ignored", lambda name: ModelVersion.objects.all(), name=str)
    with pytest.raises(TypeError, match="not a parameter of the SQL"):
        ignored.all(name="alpha-model")
    with pytest.raises(TypeError, match="declared str or int"):
        Compiled("t-kind", lambda when: ModelVersion.objects.filter(created_at=when), when=object)
    read = Compiled("t-args", lambda number: ModelVersion.objects.filter(version=number), number=int)
    with pytest.raises(TypeError, match="takes"):
        read.all(version=1)
    with pytest.raises(TypeError, match="model instances"):
        Compiled("t-values", lambda number: ModelVersion.objects.filter(version=number).values("pk"),
                 number=int).all(number=1)
