"""Concurrent promotion requests (separate processes, real database) never promote two versions at once."""
from __future__ import annotations

import hashlib

import pytest
from django.utils import timezone

from audits.core.canonical import canonical_bytes
from governance import promotions
from governance.models import PromotionRequest
from registry.models import StageAssignment
from tests.factories import SYSTEM, ModelFactory, TeamFactory, VersionFactory
from tests.workers import run_processes

WORKERS = 8

POLICY = """
name: race-{name}
target_stage: staging
applies_to:
  models: [{model}]
gates:
  - type: validation_metric
    metric: accuracy
    op: ">="
    threshold: 0.8
{extra}"""


def _setup(name: str, *, approvals: bool) -> tuple[object, list[int]]:
    from monitoring.models import Report

    model = ModelFactory(team=TeamFactory(), name=f"race-{name}")
    versions = [VersionFactory(model=model) for _ in range(WORKERS)]
    result = {"task": "classification", "metrics": {"accuracy": 0.9}}
    for v in versions:
        Report.objects.create(version=v, kind="validation", status="succeeded", options={}, result=result,
                              result_digest=hashlib.sha256(canonical_bytes(result)).hexdigest(),
                              inputs_digest="0" * 64, finished_at=timezone.now())
    extra = "  - type: approvals\n    count: 1\n    roles: [approver]\n" if approvals else ""
    promotions.policy_publish(actor=SYSTEM, text=POLICY.format(name=name, model=model.name, extra=extra))
    return model, [v.pk for v in versions]


def _race(version_pks: list[int]) -> list[str]:
    return run_processes(WORKERS, f"""
        from governance.access import Principal
        from governance.errors import Conflict
        from governance.promotions import promotion_request
        from registry.models import ModelVersion
        v = ModelVersion.objects.get(pk={version_pks!r}[WORKER])
        try:
            req, _ = promotion_request(actor=Principal.of_system(f"pipeline-{{WORKER}}"), version=v,
                                       target_stage="staging", reason="race")
            print(req.state)
        except Conflict as exc:
            print("conflict:" + exc.code)
    """)


def _one_holder(model: object) -> StageAssignment:
    rows = list(StageAssignment.objects.filter(model=model, stage="staging").order_by("started_at", "id"))
    current = [r for r in rows if r.ended_at is None]
    assert len(current) == 1
    for earlier, later in zip(rows, rows[1:]):
        assert earlier.ended_at is not None and earlier.ended_at <= later.started_at, "overlapping holders"
    return current[0]


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_needing_approval_open_exactly_one() -> None:
    """Eight pipelines ask at once: one request opens, the other seven get the 409 naming it."""
    model, pks = _setup("approval", approvals=True)
    outputs = [o.strip() for o in _race(pks)]
    assert outputs.count("awaiting_approval") == 1, outputs
    assert outputs.count("conflict:promotion_open") == WORKERS - 1, outputs
    assert PromotionRequest.objects.filter(model=model).count() == 1
    assert not StageAssignment.objects.filter(model=model, stage="staging").exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_that_pass_serialise_into_one_holder() -> None:
    """With no approval gate each request promotes at once; they take turns, never two holders."""
    model, pks = _setup("auto", approvals=False)
    outputs = [o.strip() for o in _race(pks)]
    promoted = outputs.count("promoted")
    assert promoted >= 1 and promoted + outputs.count("conflict:promotion_open") == WORKERS, outputs
    holder = _one_holder(model)
    assert PromotionRequest.objects.filter(model=model, state="promoted").count() == promoted
    last = PromotionRequest.objects.filter(model=model, state="promoted").order_by("-decided_at", "-id").first()
    assert holder.version_id == last.version_id
    # every promoted version but the last went on to archived, exactly once
    archived = StageAssignment.objects.filter(model=model, stage="archived", ended_at__isnull=True)
    assert archived.count() == promoted - 1
