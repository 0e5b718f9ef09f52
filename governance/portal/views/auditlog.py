"""The audit log: browse and filter events, see one with its inclusion proof, verify the whole log.

Events come from ``audits.selectors.event_list`` (everything for audit-log readers, otherwise
events about objects one may see) and are shown as parsed from their leaf bytes. An event's
inclusion proof is computed against the latest signed checkpoint and checked here, so the page
says whether that event is in the tree the checkpoint signs.
"""
from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone as dt_timezone
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from audits import selectors as audit_selectors
from audits.checkpoints import latest_checkpoint, tree_size
from audits.core.merkle import verify_inclusion
from audits.core.note import NoteError, open_checkpoint
from audits.keys import trusted_keys
from audits.models import AuditEvent, AuditVerification
from governance.errors import Conflict, NotFound
from governance.models import PromotionRequest
from governance.portal import services
from governance.portal.views.base import page, portal_principal, portal_view
from monitoring.models import Report
from registry.models import ModelVersion
from registry.selectors import model_list

PAGE_SIZE = 50
TARGET_TYPES = ["registry.model", "registry.version", "registry.dataset", "governance.promotion",
                "governance.policy", "governance.team", "governance.token", "auth.user", "monitoring.report",
                "audits.log"]


class EventFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150, help_text="Username, or a system actor's name.")
    action = forms.CharField(required=False, max_length=80,
                             help_text="An action, or its start: 'governance.promotion' matches all promotion events.")
    model = forms.CharField(required=False, max_length=128, label="Model",
                            help_text="Events about this model, its versions, promotions and reports.")
    target_type = forms.ChoiceField(required=False, label="Object type",
                                    choices=[("", "any")] + [(t, t) for t in TARGET_TYPES])
    target_id = forms.CharField(required=False, max_length=120, label="Object id")
    since = forms.DateField(required=False, label="From (UTC day)", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To (UTC day, inclusive)",
                            widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("'From' must not be after 'To'.")
        return data


def _ids(qs: QuerySet) -> QuerySet:
    return qs.annotate(s=Cast("pk", CharField())).values("s")


def _about_model(principal: Any, name: str) -> Q:
    """Events whose target is the model, one of its versions, promotions or reports."""
    model = model_list(principal=principal).filter(name=name).first()
    if model is None:
        raise NotFound(f"No model named {name!r} that you can see.", code="model_not_found")
    return (Q(target_type="registry.model", target_id=str(model.pk))
            | Q(target_type="registry.version", target_id__in=_ids(ModelVersion.objects.filter(model=model)))
            | Q(target_type="governance.promotion", target_id__in=_ids(PromotionRequest.objects.filter(model=model)))
            | Q(target_type="monitoring.report", target_id__in=_ids(Report.objects.filter(version__model=model))))


def _filtered(principal: Any, data: dict[str, Any]) -> QuerySet[AuditEvent]:
    qs = audit_selectors.event_list(principal=principal)
    if data.get("actor"):
        qs = qs.filter(actor_name=data["actor"])
    if data.get("action"):
        action = data["action"]
        qs = qs.filter(action=action) if action.count(".") >= 2 else qs.filter(action__startswith=action)
    if data.get("model"):
        qs = qs.filter(_about_model(principal, data["model"]))
    if data.get("target_type"):
        qs = qs.filter(target_type=data["target_type"])
    if data.get("target_id"):
        qs = qs.filter(target_id=data["target_id"])
    if data.get("since"):
        qs = qs.filter(ts__gte=datetime.combine(data["since"], time.min, tzinfo=dt_timezone.utc))
    if data.get("until"):
        qs = qs.filter(ts__lt=datetime.combine(data["until"] + timedelta(days=1), time.min, tzinfo=dt_timezone.utc))
    return qs


def _summary(payload: Any, limit: int = 160) -> str:
    """A one-line look at the payload; the event's page shows all of it."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row(event: AuditEvent) -> dict[str, Any]:
    parsed = audit_selectors.event_json(event)["event"]
    actor = parsed.get("actor") or {}
    target = parsed.get("target") or {}
    return {"seq": event.seq, "ts": event.ts, "action": parsed.get("action"),
            "actor": actor.get("username") or actor.get("name") or actor.get("type", ""),
            "actor_type": actor.get("type", ""), "target": target,
            "payload": _summary(parsed.get("payload"))}


@portal_view("GET")
def event_list(request: HttpRequest) -> HttpResponse:
    """Newest first, 50 a page; "older" pages continue below a seq (no counting of large logs)."""
    principal = portal_principal(request)
    form = EventFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    rows: list[dict[str, Any]] = []
    older = None
    if not form.is_bound or form.is_valid():
        qs = _filtered(principal, data).order_by("-seq")
        before = request.GET.get("before", "")
        if before.isdigit():
            qs = qs.filter(seq__lt=int(before))
        events = list(qs[:PAGE_SIZE + 1])
        if len(events) > PAGE_SIZE:
            events = events[:PAGE_SIZE]
            older = events[-1].seq
        rows = [_row(e) for e in events]
    query = request.GET.copy()
    query.pop("before", None)
    return page(request, "portal/audit_list.html", {
        "form": form, "rows": rows, "older": older, "query": query.urlencode(),
        "whole_log": principal.can("view_audit_log") and principal.team_scope is None,
        "can_verify": principal.can("view_audit_log"), "size": tree_size(),
    }, title="Audit log", status=200 if not form.is_bound or form.is_valid() else 400)


def _proof(seq: int) -> dict[str, Any] | None:
    """The event's inclusion proof against the latest checkpoint, checked against its signed root."""
    cp = latest_checkpoint()
    if cp is None or seq >= cp.size:
        return {"covered": False, "checkpoint": cp}
    proof = audit_selectors.inclusion(index=seq, size=cp.size)
    try:
        body, _ = open_checkpoint(cp.note.encode("utf-8"), [k.verifier for k in trusted_keys()])
        signed_root: bytes | None = body.root_hash
        signature_ok = True
    except NoteError:
        signed_root, signature_ok = None, False
    hashes = [bytes.fromhex(h) for h in proof["proof"]]
    included = signed_root is not None and verify_inclusion(bytes.fromhex(proof["leaf_hash"]), seq, cp.size,
                                                            hashes, signed_root)
    return {"covered": True, "checkpoint": cp, "proof": proof, "signature_ok": signature_ok,
            "included": included, "root_matches": signed_root is not None and signed_root.hex() == proof["root"]}


@portal_view("GET")
def event_detail(request: HttpRequest, seq: int) -> HttpResponse:
    principal = portal_principal(request)
    event = audit_selectors.event_list(principal=principal).filter(seq=seq).first()
    if event is None:
        raise NotFound(f"No audit event {seq} that you can see.", code="event_not_found")
    body = audit_selectors.event_json(event)
    return page(request, "portal/audit_event.html", {
        "event": event, "leaf": json.dumps(body["event"], indent=2, sort_keys=True, ensure_ascii=False),
        "leaf_hash": body["leaf_hash"], "row": _row(event), "inclusion": _proof(seq),
    }, title=f"Audit event #{seq}")


@portal_view("GET", "POST")
def verification_list(request: HttpRequest) -> HttpResponse:
    """Past runs and the button to start one (``view_audit_log``, as for the API's verify)."""
    principal = portal_principal(request)
    if request.method == "POST":
        try:
            row = services.verification_request(actor=principal)
        except Conflict as exc:
            messages.warning(request, exc.message)
            return redirect("admin:portal-verification", pk=exc.details["verification"])
        messages.success(request, f"Verification #{row.pk} started.")
        return redirect("admin:portal-verification", pk=row.pk)
    principal.require("view_audit_log", action="audits.log.read")
    return page(request, "portal/verification_list.html", {
        "runs": list(AuditVerification.objects.order_by("-started_at", "-id")[:50]),
        "running": services.verification_running(), "size": tree_size(),
    }, title="Audit log verification")


@portal_view("GET")
def verification_detail(request: HttpRequest, pk: int) -> HttpResponse:
    principal = portal_principal(request)
    principal.require("view_audit_log", action="audits.log.read")
    run = AuditVerification.objects.filter(pk=pk).first()
    if run is None:
        raise NotFound(f"No verification {pk}.", code="verification_not_found")
    size = tree_size()
    abandoned = run.finished_at is None and run.started_at < timezone.now() - services.VERIFICATION_ABANDONED_AFTER
    return page(request, "portal/verification_detail.html", {
        "run": run, "size": size, "running": run.finished_at is None and not abandoned, "abandoned": abandoned,
        "percent": 100 if run.finished_at else (int(100 * run.size / size) if size else 0),
    }, title=f"Audit log verification #{run.pk}")
