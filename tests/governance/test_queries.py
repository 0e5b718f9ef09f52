"""Query helpers, and how the service talks to PostgreSQL."""
from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, connections
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


def test_constants_are_written_into_the_sql_and_the_callers_values_stay_bound() -> None:
    """``inline_constants``: text and integers become literals; kept positions, and anything else, stay bound."""
    from governance.queries import inline_constants

    sql = 'SELECT 1 FROM t WHERE a = %s AND b LIKE \'x%%\' AND c IN (%s, %s) AND d = %s AND e = %s AND f = %s'
    text, params, moved = inline_constants(sql, [7, "it's", "50%", True, None, 3], keep={0, 5})
    assert text == ("SELECT 1 FROM t WHERE a = %s AND b LIKE 'x%%' AND c IN ('it''s', '50%%') AND d = %s "
                    "AND e = %s AND f = %s")
    assert params == [7, True, None, 3] and moved == {0: 0, 3: 1, 4: 2, 5: 3}
    assert inline_constants("x = %s", ["a\x00b"], keep=set())[1] == ["a\x00b"]  # no NUL in a literal
    with pytest.raises(TypeError, match="placeholders"):
        inline_constants("x = %s", [1, 2], keep=set())


def test_a_compiled_read_carries_its_constants_as_literals(cast: Cast) -> None:
    """The open-request read names the open states in its SQL; only the caller's four values are bound."""
    from governance.models import OPEN_PROMOTION_STATES
    from governance.promotions import _OPEN_OR_REPLAYED

    v = cast.versions["alpha1"]
    with CaptureQueriesContext(connection) as ctx:
        _OPEN_OR_REPLAYED.all(model_id=v.model_id, target_stage="staging", user_id=1, key="k")
    plan = connections["default"].__dict__["_compiled_plans"][_OPEN_OR_REPLAYED.name]
    assert all(f"'{state}'" in plan.sql for state in OPEN_PROMOTION_STATES)
    assert sorted(map(str, plan.params)) == sorted(map(str, _OPEN_OR_REPLAYED.sentinels.values()))
    assert len(ctx.captured_queries) == 1


def _generic_plan(sql: str, params: list[Any], table: str, keep: set[str]) -> str:
    """PostgreSQL's plan for ``sql`` prepared and planned once for all values (as psycopg's may be).

    Only ``table``'s indexes named in ``keep`` (or starting so) and its primary key exist while it is planned: the
    question is whether the plan *can* use them, not which index the planner prefers on the
    test's tiny tables. The indexes come back with the savepoint's rollback.
    """
    import re

    from django.db import transaction

    n = iter(range(1, len(params) + 1))
    text = re.sub(r"%s", lambda _: f"${next(n)}", sql.replace("%%", "%"))
    args = ", ".join("NULL" if p is None else "'" + str(p).replace("'", "''") + "'" for p in params)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred check may be pending when a table is altered
        cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname NOT LIKE %s",
                    [table, "%_pkey"])
        for (name,) in cur.fetchall():
            if not any(name.startswith(k) for k in keep):
                cur.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT IF EXISTS "{name}"')
                cur.execute(f'DROP INDEX IF EXISTS "{name}"')
        cur.execute(f"PREPARE generic_probe AS {text}")
        cur.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute(f"EXPLAIN EXECUTE generic_probe({args})")
        plan = "\n".join(row[0] for row in cur.fetchall())
        cur.execute("DEALLOCATE generic_probe")
        transaction.set_rollback(True)
    return plan


@pytest.mark.postgres
def test_the_hot_reads_generic_plans_use_the_partial_unique_indexes(cast: Cast) -> None:
    """With the constants written in, a generic plan can prove a partial index's condition.

    The open-request read and the stage holders' read run on every promotion. With ``state IN
    ($2, $3, $4)`` or ``stage = $2`` a generic plan could not use the partial unique indexes, and
    on a database that is not vacuumed walked every request, or every stint, the model ever had
    (docs/benchmarks/promotions.md). The same query with the constants bound is the control.
    """
    from governance.promotions import _OPEN_OR_REPLAYED
    from registry.services import _CURRENT_STINTS

    v = cast.versions["alpha1"]
    values = {"model_id": v.model_id, "target_stage": "staging", "user_id": 1, "key": "k"}
    _OPEN_OR_REPLAYED.all(**values)
    _CURRENT_STINTS["staging"].all(model_id=v.model_id, version_id=v.pk)
    plans = connections["default"].__dict__["_compiled_plans"]

    def bound(read: Any, given: dict[str, Any]) -> tuple[str, list[Any]]:
        plan = plans[read.name]
        params = list(plan.params)
        for at, key in plan.slots:
            params[at] = given[key]
        return plan.sql, params

    requests = ("governance_promotionrequest", {"one_open_promotion_per_stage", "promotion_replay_lookup"})
    # The version's own stint by the plain version index, the stage's holder by the partial unique one.
    stints = ("registry_stageassignment", {"one_current_holder_per_stage", "registry_stageassignment_version_id"})
    assert "Index Scan on one_open_promotion_per_stage" in _generic_plan(*bound(_OPEN_OR_REPLAYED, values), *requests)
    sql, params = bound(_CURRENT_STINTS["staging"], {"model_id": v.model_id, "version_id": v.pk})
    stint_plan = _generic_plan(sql, params, *stints)
    assert "Index Scan on one_current_holder_per_stage" in stint_plan, stint_plan
    assert "registry_registeredmodel" not in stint_plan and "Seq Scan" not in stint_plan  # held_version by key
    # The controls: the same reads with the constants bound cannot use those indexes.
    sql_bound, params_bound = _OPEN_OR_REPLAYED.build(**values).query.get_compiler(using="default").as_sql()
    assert "one_open_promotion_per_stage" not in _generic_plan(sql_bound, list(params_bound), *requests)
    assert sql.count("'staging'") == 1 and params == [v.pk, v.model_id]
    control = _generic_plan(sql.replace("'staging'", "%s"), [v.pk, "staging", v.model_id], *stints)
    assert "one_current_holder_per_stage" not in control and "Seq Scan" in control, control


def _row(model: Any, pk: int) -> dict[str, Any]:
    return {k: v for k, v in model.objects.filter(pk=pk).values()[0].items() if k != "id"}


def test_a_compiled_insert_writes_what_the_orm_writes(cast: Cast) -> None:
    """Same columns, same stored values (JSON, NULLs, foreign keys, defaults), key set, instance saved."""
    from django.utils import timezone

    from governance.queries import CompiledInsert
    from tests.factories import digest

    model, now = cast.models["alpha"], timezone.now()
    fields = {"model": model, "artifact_uri": "s3://b/x", "framework": "sklearn", "parameters": {"depth": 3, "lr": 0.1},
              "metrics": {"auc": 0.9, "none": None}, "tags": {"k": "v"}, "created_at": now, "created_by": None}
    orm = ModelVersion.objects.create(version=901, artifact_sha256=digest("orm"), **fields)
    insert = CompiledInsert(ModelVersion)
    with CaptureQueriesContext(connection) as ctx:
        [ours] = insert.insert([ModelVersion(version=902, artifact_sha256=digest("ours"), **fields)])
        insert.insert([ModelVersion(version=903, artifact_sha256=digest("again"), **fields)])
    assert len(ctx.captured_queries) == 2  # one statement each, nothing read back
    assert ours.pk is not None and ours._state.adding is False and ours._state.db == "default"
    expected = _row(ModelVersion, orm.pk) | {"version": 902, "artifact_sha256": digest("ours")}
    assert _row(ModelVersion, ours.pk) == expected
    assert ModelVersion.objects.get(pk=ours.pk).artifact_size is None  # a field left unset: its default, as save()


def test_a_compiled_insert_of_several_rows_sets_their_keys_in_order(cast: Cast) -> None:
    from django.utils import timezone

    from governance.queries import CompiledInsert
    from registry.models import StageAssignment

    v1, v2 = cast.versions["alpha1"], cast.versions["alpha2"]
    now = timezone.now()
    rows = [StageAssignment(model=v1.model, version=v, stage="archived", started_at=now, ended_at=now,
                            started_by={"n": i}, reason=f"r{i}") for i, v in enumerate((v1, v2))]
    CompiledInsert(StageAssignment).insert(rows)
    assert rows[0].pk < rows[1].pk
    assert [(r.version_id, r.reason, r.started_by) for r in StageAssignment.objects.filter(pk__in=[r.pk for r in rows])
            .order_by("pk")] == [(v1.pk, "r0", {"n": 0}), (v2.pk, "r1", {"n": 1})]


def test_a_compiled_insert_ignoring_conflicts_skips_a_duplicate_and_errors_stay_errors(cast: Cast) -> None:
    from django.db import IntegrityError, transaction
    from django.db.models import F

    from governance.queries import CompiledInsert

    v, ds = cast.versions["alpha1"], list(cast.datasets.values())[0]
    through = ModelVersion.training_datasets.through
    link = CompiledInsert(through, ignore_conflicts=True)
    link.insert([through(modelversion_id=v.pk, dataset_id=ds.pk)])
    link.insert([through(modelversion_id=v.pk, dataset_id=ds.pk)])  # as add() would: no error, no second row
    assert through.objects.filter(modelversion_id=v.pk, dataset_id=ds.pk).count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():  # the same version number twice
        CompiledInsert(ModelVersion).insert([ModelVersion(model=v.model, version=v.version, artifact_uri="s3://d",
                                                          artifact_sha256="0" * 64)])
    with pytest.raises(TypeError, match="expressions"):
        CompiledInsert(ModelVersion).insert([ModelVersion(model=v.model, version=F("version"), artifact_uri="s3://e",
                                                          artifact_sha256="1" * 64)])


def test_a_compiled_update_saves_the_named_fields_and_refuses_a_missing_row(cast: Cast) -> None:
    from django.db import DatabaseError

    from governance.queries import compiled_update

    v = cast.versions["alpha1"]
    v.description, v.tags, v.framework = "new words", {"team": "x"}, "not saved"
    with CaptureQueriesContext(connection) as ctx:
        compiled_update(v, ["description", "tags"])
    assert len(ctx.captured_queries) == 1
    fresh = ModelVersion.objects.get(pk=v.pk)
    assert (fresh.description, fresh.tags) == ("new words", {"team": "x"}) and fresh.framework != "not saved"
    gone = ModelVersion(pk=10**9, model=v.model, version=1)
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        compiled_update(gone, ["description"])


def test_a_reserved_key_comes_from_the_sequence_on_postgresql_and_is_none_elsewhere(cast: Cast) -> None:
    """Reserved keys never repeat and are never handed out again by a plain insert."""
    from governance.queries import CompiledInsert, reserve_key
    from tests.factories import digest

    v = cast.versions["alpha1"]
    first = reserve_key(ModelVersion)
    if connection.vendor != "postgresql":
        assert first is None  # SQLite has no sequence to take from: callers insert first there
        return
    second = reserve_key(ModelVersion)
    assert isinstance(first, int) and second is not None and second > first
    keyed = CompiledInsert(ModelVersion, with_key=True)
    with CaptureQueriesContext(connection) as ctx:
        [row] = keyed.insert([ModelVersion(pk=first, model=v.model, version=951, artifact_uri="s3://k",
                                           artifact_sha256=digest("keyed"))])
    assert len(ctx.captured_queries) == 1 and "RETURNING" not in ctx.captured_queries[0]["sql"].upper()
    assert row.pk == first and ModelVersion.objects.get(pk=first).version == 951
    # A plain insert afterwards takes a later key: the one reserved (and unused) stays unused.
    [plain] = CompiledInsert(ModelVersion).insert([ModelVersion(model=v.model, version=952, artifact_uri="s3://p",
                                                                artifact_sha256=digest("plain"))])
    assert plain.pk > second
    with pytest.raises(TypeError, match="reserved key"):
        keyed.insert([ModelVersion(model=v.model, version=953, artifact_uri="s3://n", artifact_sha256=digest("n"))])
