"""Models: the visible ones by risk tier and stage, and one model's versions, stages and decisions."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from governance.models import PromotionRequest, Waiver
from governance.portal import selectors
from governance.portal.views.base import page, portal_principal, portal_view
from monitoring.models import Report
from registry import selectors as registry_selectors
from registry.models import RiskTier, StageAssignment


@portal_view("GET")
def model_list(request: HttpRequest) -> HttpResponse:
    principal = portal_principal(request)
    tier = request.GET.get("tier", "")
    stage = request.GET.get("stage", "")
    qs = selectors.models_with_stage(principal=principal)
    if tier in RiskTier.values:
        qs = qs.filter(risk_tier=tier)
    if stage in dict(selectors.STAGE_COLUMNS):
        qs = selectors.filter_by_stage(qs, stage)
    models = list(qs.order_by("name")[:500])
    holders: dict[int, dict[str, int]] = {}
    current = StageAssignment.objects.filter(model__in=[m.pk for m in models], ended_at__isnull=True)
    for sa in current.select_related("version"):
        holders.setdefault(sa.model_id, {})[sa.stage] = sa.version.version
    rows = [{"model": m, "column": dict(selectors.STAGE_COLUMNS)[selectors.stage_column(m)],
             "production": holders.get(m.pk, {}).get("production"), "staging": holders.get(m.pk, {}).get("staging")}
            for m in models]
    return page(request, "portal/model_list.html", {
        "rows": rows, "tiers": RiskTier.choices, "stages": selectors.STAGE_COLUMNS, "tier": tier, "stage": stage,
    }, title="Models")


@portal_view("GET")
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    principal = portal_principal(request)
    model = registry_selectors.model_get(principal=principal, name=name)  # 404 for another team's model
    versions = list(registry_selectors.version_list(principal=principal, model=model).order_by("-version")[:100])
    return page(request, "portal/model_detail.html", {
        "model": model,
        "versions": versions,
        "holders": list(registry_selectors.stage_holders(model=model)),
        "history": list(registry_selectors.stage_history(model=model)[:50]),
        "promotions": list(PromotionRequest.objects.filter(model=model).select_related("version", "policy")
                           .prefetch_related("approvals__user").order_by("-created_at", "-id")[:50]),
        "reports": list(Report.objects.filter(version__model=model).select_related("version")
                        .order_by("-created_at", "-id")[:50]),
        "waivers": list(Waiver.objects.filter(version__model=model).select_related("version", "granted_by")[:50]),
    }, title=f"Model {model.name}")
