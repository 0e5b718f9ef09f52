"""Reads on evidence, always through what the principal may see.

A report is visible exactly when its version's model is (``registry.selectors.model_list``); a
report of another team's model is "not found", like one that does not exist.
"""
from __future__ import annotations

from django.db.models import QuerySet

from governance.access import Principal
from governance.errors import NotFound
from monitoring.models import Report
from registry.models import ModelVersion
from registry.selectors import model_list

_RELATED = ("version__model", "reference", "current", "evaluation")


def report_list(*, principal: Principal, version: ModelVersion) -> QuerySet[Report]:
    # ``version`` came from version_get on a visible model, so its reports are visible too.
    return Report.objects.filter(version=version).select_related(*_RELATED)


def report_get(*, principal: Principal, pk: int) -> Report:
    report = (Report.objects.filter(pk=pk, version__model__in=model_list(principal=principal))
              .select_related(*_RELATED).first())
    if report is None:
        raise NotFound(f"No report with id {pk} that you can see.", code="report_not_found")
    return report
