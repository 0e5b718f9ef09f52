"""The registry through its API: happy paths, isolation, bad input that changes nothing, query bounds."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audits.models import AuditEvent, AuditPending
from registry import services as reg
from registry.models import Dataset, ModelVersion, RegisteredModel, StageAssignment
from tests.factories import SYSTEM, Cast, VersionFactory, digest

SHA = digest("new-artifact")


def _state() -> tuple[int, ...]:
    """Everything a bad request must leave unchanged."""
    return (RegisteredModel.objects.count(), ModelVersion.objects.count(), Dataset.objects.count(),
            StageAssignment.objects.count(), AuditPending.objects.count() + AuditEvent.objects.count())


def test_register_model_and_versions_numbered_by_server(cast: Cast, client_for: Any) -> None:
    api = client_for("ml_engineer")
    r = api.post("/api/v1/models/", {"name": "fraud", "risk_tier": "high", "data_categories": ["personal"],
                                     "intended_use": "card fraud"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["team"] == "alpha"
    for n in (1, 2):
        r = api.post("/api/v1/models/fraud/versions/", {"artifact_uri": f"s3://b/fraud/{n}",
                                                        "artifact_sha256": digest(f"fraud-{n}"),
                                                        "metrics": {"auc": 0.91},
                                                        "training_datasets": [cast.datasets["alpha"].pk]},
                     format="json")
        assert r.status_code == 201, r.content
        assert r.json()["version"] == n
        assert r.json()["training_datasets"][0]["sha256"] == cast.datasets["alpha"].sha256
    listing = api.get("/api/v1/models/fraud/versions/").json()
    assert [v["version"] for v in listing["results"]] == [2, 1]


def test_duplicate_digest_names_the_existing_version(cast: Cast, client_for: Any) -> None:
    v1 = cast.versions["alpha1"]
    before = _state()
    r = client_for("pipeline").post("/api/v1/models/alpha-model/versions/",
                                    {"artifact_uri": "s3://x", "artifact_sha256": v1.artifact_sha256}, format="json")
    assert r.status_code == 409
    body = r.json()["error"]
    assert body["code"] == "duplicate_artifact" and body["details"]["existing_version"] == 1
    assert "version 1" in body["message"]
    assert _state() == before


@pytest.mark.parametrize(("payload", "field"), [
    ({"artifact_uri": "s3://x", "artifact_sha256": "ABC"}, "artifact_sha256"),
    ({"artifact_uri": "s3://x", "artifact_sha256": "g" * 64}, "artifact_sha256"),
    ({"artifact_uri": "s3://x", "artifact_sha256": SHA.upper()}, "artifact_sha256"),
    ({"artifact_uri": "s3://x"}, "artifact_sha256"),
    ({"artifact_uri": "x" * 1025, "artifact_sha256": SHA}, "artifact_uri"),
    ({"artifact_uri": "s3://x", "artifact_sha256": SHA, "artifact_size": "big"}, "artifact_size"),
    ({"artifact_uri": "s3://x", "artifact_sha256": SHA, "artifact_size": -1}, "artifact_size"),
    ({"artifact_uri": "s3://x", "artifact_sha256": SHA, "metrics": [1, 2]}, "metrics"),
    ({"artifact_uri": "s3://x", "artifact_sha256": SHA, "version": 7}, "version"),
    ({"artifact_uri": "s3://x", "artifact_sha256": SHA, "stage": "production"}, "stage"),
    ({"artifact_uri": "s3://x", "artifact_sha256": SHA, "training_datasets": [999999]}, "training_datasets"),
    ({"artifact_uri": "s3://x", "artifact_sha256": SHA, "parameters": {"n": 2**60}}, "parameters"),
])
def test_bad_version_input_is_400_and_changes_nothing(payload: dict, field: str, cast: Cast,
                                                      client_for: Any) -> None:
    before = _state()
    r = client_for("pipeline").post("/api/v1/models/alpha-model/versions/", payload, format="json")
    assert r.status_code == 400, r.content
    error = r.json()["error"]
    assert field in error["message"] or field in str(error["details"]), error
    assert _state() == before


def test_other_teams_dataset_cannot_be_referenced(cast: Cast, client_for: Any) -> None:
    r = client_for("pipeline").post("/api/v1/models/alpha-model/versions/", {
        "artifact_uri": "s3://x", "artifact_sha256": SHA, "training_datasets": [cast.datasets["beta"].pk]},
        format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_datasets"


@pytest.mark.parametrize("payload", [
    {"name": "bad name"}, {"name": "-leading"}, {"name": "x" * 129}, {"name": "ok", "risk_tier": "extreme"},
    {"name": "ok", "data_categories": ["medical"]}, {"name": "ok", "archived": True}, {"name": 5},
    {"name": "ok", "team": "beta"}, {"name": "ok", "tags": "not-a-map"},
])
def test_bad_model_input_is_400(payload: dict, cast: Cast, client_for: Any) -> None:
    before = _state()
    r = client_for("ml_engineer").post("/api/v1/models/", payload, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["error"]["message"]
    assert _state() == before


def test_duplicate_model_name_is_409_even_across_teams(cast: Cast, client_for: Any) -> None:
    r = client_for("ml_engineer").post("/api/v1/models/", {"name": "beta-model"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate_model"


def test_malformed_json_and_non_object_bodies(cast: Cast, client_for: Any) -> None:
    api = client_for("ml_engineer")
    r = api.post("/api/v1/models/", data=b"{not json", content_type="application/json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "parse_error"
    r = api.post("/api/v1/models/", data=b"[1,2]", content_type="application/json")
    assert r.status_code == 400


def test_oversized_body_is_refused(cast: Cast, client_for: Any, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    r = client_for("ml_engineer").post("/api/v1/models/", {"name": "big", "description": "x" * 5000},
                                       format="json")
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def test_immutable_version_fields_cannot_be_patched(cast: Cast, client_for: Any) -> None:
    before = _state()
    r = client_for("ml_engineer").patch("/api/v1/models/alpha-model/versions/1/",
                                        {"artifact_sha256": SHA}, format="json")
    assert r.status_code == 400
    assert ModelVersion.objects.get(pk=cast.versions["alpha1"].pk).artifact_sha256 == cast.versions["alpha1"].artifact_sha256
    assert _state() == before
    r = client_for("ml_engineer").patch("/api/v1/models/alpha-model/versions/1/",
                                        {"description": "calibrated"}, format="json")
    assert r.status_code == 200 and r.json()["description"] == "calibrated"


def test_stage_cannot_be_written_through_the_api(cast: Cast, client_for: Any) -> None:
    api = client_for("administrator")
    r = api.patch("/api/v1/models/alpha-model/", {"stages": {"production": 2}}, format="json")
    assert r.status_code == 400
    r = api.post("/api/v1/models/alpha-model/stages/", {"stage": "production", "version": 2}, format="json")
    assert r.status_code == 405
    assert StageAssignment.objects.get(model=cast.models["alpha"], stage="production",
                                       ended_at__isnull=True).version == cast.versions["alpha1"]


def test_unknown_model_and_other_teams_model_look_the_same(cast: Cast, client_for: Any) -> None:
    api = client_for("viewer")
    hidden = api.get("/api/v1/models/beta-model/")
    missing = api.get("/api/v1/models/no-such-model/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"]
    names = [m["name"] for m in api.get("/api/v1/models/").json()["results"]]
    assert names == ["alpha-model"]
    assert [m["name"] for m in api.get("/api/v1/models/?name=beta").json()["results"]] == []
    assert api.get(f"/api/v1/datasets/{cast.datasets['beta'].pk}/").status_code == 404


def test_compliance_sees_all_teams(cast: Cast, client_for: Any) -> None:
    names = [m["name"] for m in client_for("compliance_officer").get("/api/v1/models/").json()["results"]]
    assert names == ["alpha-model", "beta-model"]


def test_team_scoped_token_narrows_a_global_role(cast: Cast, client_for: Any) -> None:
    from rest_framework.test import APIClient

    from governance import services as gov

    gov.team_member_add(actor=SYSTEM, team=cast.teams["beta"], user=cast.users["administrator"])
    _, secret = gov.token_create(actor=SYSTEM, user=cast.users["administrator"], name="beta-only",
                                 team=cast.teams["beta"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert [m["name"] for m in api.get("/api/v1/models/").json()["results"]] == ["beta-model"]
    assert api.get("/api/v1/models/alpha-model/").status_code == 404


def test_stage_history_answers_what_was_in_production_at_time_t(cast: Cast, client_for: Any) -> None:
    model = cast.models["alpha"]
    v1, v2 = cast.versions["alpha1"], cast.versions["alpha2"]
    t_before = timezone.now()
    reg.stage_move(actor=SYSTEM, version=v2, stage="production", reason="v2 better")
    api = client_for("auditor")
    then = api.get(f"/api/v1/models/{model.name}/stages/", {"at": t_before.isoformat()}).json()
    now = api.get(f"/api/v1/models/{model.name}/stages/").json()
    assert [(s["stage"], s["version"]) for s in then["stages"]] == [("production", 1)]
    assert [(s["stage"], s["version"]) for s in now["stages"]] == [("production", 2)]
    long_ago = api.get(f"/api/v1/models/{model.name}/stages/",
                       {"at": (t_before - timedelta(days=365)).isoformat()}).json()
    assert long_ago["stages"] == []
    history = api.get(f"/api/v1/models/{model.name}/stages/history/").json()["results"]
    assert {(h["stage"], h["version"]) for h in history} >= {("production", 1), ("production", 2), ("archived", 1)}
    archived = StageAssignment.objects.get(version=v1, ended_at__isnull=True)
    assert archived.stage == "archived" and archived.reason == "displaced from production by v2"
    import json

    from audits.models import AuditEvent
    from audits.services import audit_sequence

    audit_sequence(inline=True)
    moved = json.loads(bytes(AuditEvent.objects.filter(action="registry.stage.moved", target_id=str(v2.pk))
                             .latest("seq").leaf))["payload"]
    assert moved["displaced_version"] == v1.version and moved["from_stage"] is None
    bad = api.get(f"/api/v1/models/{model.name}/stages/", {"at": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_at"


def test_models_with_versions_are_archived_not_deleted(cast: Cast, client_for: Any) -> None:
    api = client_for("ml_engineer")
    r = api.delete("/api/v1/models/alpha-model/")
    assert r.status_code == 409 and "archive" in r.json()["error"]["message"]
    api.post("/api/v1/models/", {"name": "typo-model"}, format="json")
    assert api.delete("/api/v1/models/typo-model/").status_code == 204
    assert not RegisteredModel.objects.filter(name="typo-model").exists()


def test_archived_model_takes_no_versions(cast: Cast, client_for: Any) -> None:
    api = client_for("ml_engineer")
    api.post("/api/v1/models/", {"name": "old"}, format="json")
    assert api.post("/api/v1/models/old/archive/").status_code == 200
    r = api.post("/api/v1/models/old/versions/", {"artifact_uri": "s3://x", "artifact_sha256": SHA}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "model_archived"


def test_datasets_register_number_and_refuse_duplicates(cast: Cast, client_for: Any) -> None:
    api = client_for("data_scientist")
    first = api.post("/api/v1/datasets/", {"name": "claims", "sha256": digest("c1"), "storage_uri": "s3://d/c1",
                                           "data_categories": ["phi"], "rows": 10}, format="json")
    second = api.post("/api/v1/datasets/", {"name": "claims", "sha256": digest("c2"), "storage_uri": "s3://d/c2"},
                      format="json")
    assert (first.status_code, second.status_code) == (201, 201)
    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    dup = api.post("/api/v1/datasets/", {"name": "other", "sha256": digest("c1"), "storage_uri": "s3://d/x"},
                   format="json")
    assert dup.status_code == 409 and "claims v1" in dup.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/api/v1/models/", "/api/v1/models/alpha-model/versions/", "/api/v1/datasets/",
                                  "/api/v1/models/alpha-model/stages/history/", "/api/v1/tokens/",
                                  "/api/v1/teams/"])
@pytest.mark.parametrize("who", ["viewer", "compliance_officer"])
def test_list_queries_are_bounded_whatever_the_page_size(path: str, who: str, cast: Cast, client_for: Any,
                                                         django_assert_max_num_queries: Any) -> None:
    from registry.models import Dataset as D

    for i in range(30):
        m = reg.model_create(actor=SYSTEM, name=f"bulk-{i}", team=cast.teams["alpha"])
        ds = reg.dataset_register(actor=SYSTEM, team=cast.teams["alpha"], name=f"d-{i}",
                                  sha256=digest(f"bulk-ds-{i}"), storage_uri="s3://x")
        VersionFactory(model=cast.models["alpha"], training_datasets=[ds.pk])
        reg.stage_move(actor=SYSTEM, version=VersionFactory(model=m), stage="staging")
    assert D.objects.count() > 30
    api = client_for(who)
    api.get(path, {"page_size": 2})  # warm caches (content types, permissions)
    with django_assert_max_num_queries(12) as small:
        assert api.get(path, {"page_size": 2}).status_code == 200
    with django_assert_max_num_queries(12) as large:
        assert api.get(path, {"page_size": 200}).status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries), (
        [q["sql"] for q in large.captured_queries])


def test_errors_never_leak_a_stack_trace(cast: Cast, client_for: Any, monkeypatch: Any) -> None:
    from registry import selectors

    def boom(**kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(selectors, "model_get", boom)
    r = client_for("viewer").get("/api/v1/models/alpha-model/")
    assert r.status_code == 500
    assert "secret internals" not in r.content.decode() and "Traceback" not in r.content.decode()
    assert r.json()["error"]["code"] == "internal_error" and r.json()["error"]["request_id"]


def test_unknown_api_path_is_json_404(client: Any) -> None:
    r = client.get("/api/v1/nothing-here/")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_the_hand_built_version_answer_equals_the_serializer(cast: Cast, client_for: Any) -> None:
    """``version_answer`` (the API's answer) renders exactly what ``VersionOut`` (the schema) does."""
    import json

    from rest_framework.renderers import JSONRenderer

    from registry.api import VersionOut, version_answer

    datasets = list(Dataset.objects.filter(team=cast.teams["alpha"]).values_list("pk", flat=True))
    made = client_for("ml_engineer").post("/api/v1/models/alpha-model/versions/", {
        "artifact_uri": "s3://m/x.onnx", "artifact_sha256": digest("equal"), "artifact_size": 12,
        "parameters": {"depth": 3}, "metrics": {"accuracy": 0.9}, "tags": {"k": "v"},
        "training_datasets": datasets, "evaluation_datasets": datasets[:1]}, format="json")
    assert made.status_code == 201, made.json()
    rows = list(ModelVersion.objects.all())
    assert any(v.created_by_id is None for v in rows) and any(v.created_by_id is not None for v in rows)
    assert any(v.artifact_size is None for v in rows) and any(v.training_datasets.exists() for v in rows)
    render = JSONRenderer().render
    for row in rows:
        fresh = ModelVersion.objects.get(pk=row.pk)
        assert json.loads(render(version_answer(row))) == json.loads(render(VersionOut(fresh).data)), row.pk
    mine = ModelVersion.objects.get(model__name="alpha-model", version=made.json()["version"])
    assert json.loads(render(VersionOut(mine).data)) == made.json()  # what the registration answered


def test_lock_model_refreshes_what_writers_decide_on(cast: Cast) -> None:
    """``lock_model`` writes the row's current archived flag, name, risk tier and team back."""
    from django.db import transaction

    from registry.services import lock_model

    stale = RegisteredModel.objects.select_related("team").get(name="alpha-model")
    RegisteredModel.objects.filter(pk=stale.pk).update(archived=True, risk_tier="high", team=cast.teams["beta"])
    with transaction.atomic():
        fresh = lock_model(stale)
    assert fresh is stale and fresh.archived is True and fresh.risk_tier == "high"
    assert fresh.team_id == cast.teams["beta"].pk and fresh.team.slug == "beta"  # the cached team was dropped


@pytest.mark.django_db(transaction=True)
def test_lock_model_outside_a_transaction_is_refused() -> None:
    """In autocommit the lock would end with its own statement, protecting nothing."""
    from registry.services import lock_model
    from tests.factories import ModelFactory, TeamFactory

    with pytest.raises(RuntimeError, match="inside the transaction"):
        lock_model(ModelFactory(team=TeamFactory()))


def test_a_version_and_its_lineage_are_stored_as_the_orm_stores_them(cast: Cast) -> None:
    """PostgreSQL writes the version and both link tables in one statement; the rows are the ORM's."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from governance.access import Principal

    from tests.factories import DatasetFactory

    model = cast.models["alpha"]
    ds = [cast.datasets["alpha"], DatasetFactory(team=model.team, name="alpha-holdout")]
    orm = ModelVersion.objects.create(model=model, version=900, artifact_uri="s3://b/orm", artifact_sha256=digest("o"),
                                      metrics={"auc": 0.9}, created_by=None)
    orm.training_datasets.add(*ds)
    orm.evaluation_datasets.add(ds[0])
    actor = Principal.of_system("test")
    with CaptureQueriesContext(connection) as ctx:
        ours = reg.version_register(actor=actor, model=model, artifact_uri="s3://b/orm", artifact_sha256=digest("n"),
                                    metrics={"auc": 0.9}, training_datasets=[d.pk for d in ds] + [ds[0].pk],
                                    evaluation_datasets=[ds[0].pk])
    writes = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith(("INSERT", "WITH"))]
    if connection.vendor == "postgresql":  # the version, both link tables and its audit event: one statement
        assert len(writes) == 1, writes
        for table in ("registry_modelversion", "registry_modelversion_training_datasets",
                      "registry_modelversion_evaluation_datasets", "audits_auditpending"):
            assert f"INSERT INTO {connection.ops.quote_name(table)}" in writes[0] \
                or f"INSERT INTO {table}" in writes[0], table
    else:
        assert len(writes) == 4, writes
    recorded = [json.loads(bytes(p.body)) for p in AuditPending.objects.all()] + \
        [json.loads(e.leaf) for e in AuditEvent.objects.all()]
    assert any(b["action"] == "registry.version.registered" and b["target"]["id"] == str(ours.pk) for b in recorded)
    fresh = ModelVersion.objects.get(pk=ours.pk)
    assert ours._state.adding is False and fresh.version == orm.version + 1
    skip = {"id", "version", "artifact_sha256", "created_at"}
    assert {k: v for k, v in ModelVersion.objects.filter(pk=ours.pk).values()[0].items() if k not in skip} == \
        {k: v for k, v in ModelVersion.objects.filter(pk=orm.pk).values()[0].items() if k not in skip}
    assert sorted(fresh.training_datasets.values_list("pk", flat=True)) == \
        sorted(orm.training_datasets.values_list("pk", flat=True))  # each once, duplicates dropped
    assert list(fresh.evaluation_datasets.values_list("pk", flat=True)) == [ds[0].pk]
    # No lineage at all: the version alone.
    bare = reg.version_register(actor=actor, model=model, artifact_uri="s3://b/bare", artifact_sha256=digest("b"))
    assert not bare.training_datasets.exists() and not bare.evaluation_datasets.exists()
