"""Policies: every name with the version in force, one policy's versions and diffs, and publishing.

Publishing is two steps: the document is checked (``parse_policy``, every problem listed) and its
canonical form shown as a diff against the version in force; "Publish" then calls
``governance.promotions.policy_publish``, the service behind ``POST /api/v1/policies/``. The
publish step carries the digest of what was previewed, so a document edited after its preview is
previewed again rather than published unseen.
"""
from __future__ import annotations

import difflib
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from governance import promotions, selectors as gov_selectors
from governance.errors import DomainError, NotFound, PermissionDenied
from governance.models import PromotionPolicy
from governance.policy import PolicyError, dump_policy, parse_policy, policy_from_data
from governance.portal.views.base import page, portal_principal, portal_view


class PolicyForm(forms.Form):
    document = forms.CharField(max_length=64 * 1024, strip=False, widget=forms.Textarea(attrs={"rows": 24, "cols": 90}),
                               help_text="YAML or JSON, as in docs/policies.md.")
    format = forms.ChoiceField(choices=[("yaml", "YAML"), ("json", "JSON")], initial="yaml")
    previewed = forms.CharField(required=False, widget=forms.HiddenInput)


def diff_lines(old: str, new: str, *, old_label: str, new_label: str) -> list[tuple[str, str]]:
    """A unified diff as (kind, line) pairs, kind in add / del / hunk / ctx, for the template."""
    out = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), old_label, new_label, lineterm="", n=3):
        if line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


def _latest_by_name() -> list[PromotionPolicy]:
    latest: dict[str, PromotionPolicy] = {}
    for row in PromotionPolicy.objects.order_by("name", "-version"):
        latest.setdefault(row.name, row)
    return list(latest.values())


def _yaml(row: PromotionPolicy) -> str:
    return dump_policy(policy_from_data(row.document), fmt="yaml")


@portal_view("GET")
def policy_list(request: HttpRequest) -> HttpResponse:
    principal = portal_principal(request)
    gov_selectors.policy_list(principal=principal)  # signed in is enough: policies are organisation-wide
    rows = []
    for row in _latest_by_name():
        policy = policy_from_data(row.document)
        rows.append({"row": row, "policy": policy, "gates": [g.key for g in policy.gates]})
    return page(request, "portal/policy_list.html", {
        "rows": rows, "can_publish": principal.can("manage_policies"),
    }, title="Promotion policies")


@portal_view("GET")
def policy_detail(request: HttpRequest, name: str) -> HttpResponse:
    principal = portal_principal(request)
    versions = list(gov_selectors.policy_list(principal=principal).filter(name=name).order_by("-version"))
    if not versions:
        raise NotFound(f"No policy {name!r}.", code="policy_not_found")
    by_number = {v.version: v for v in versions}
    raw = request.GET.get("version", "")
    shown = by_number.get(int(raw)) if raw.isdigit() else versions[0]
    if shown is None:
        raise NotFound(f"Policy {name!r} has no version {raw}.", code="policy_not_found")
    previous = by_number.get(shown.version - 1)
    diff = diff_lines(_yaml(previous), _yaml(shown), old_label=f"{name} v{previous.version}",
                      new_label=f"{name} v{shown.version}") if previous else []
    return page(request, "portal/policy_detail.html", {
        "versions": versions, "shown": shown, "previous": previous, "text": _yaml(shown), "diff": diff,
        "in_force": shown.pk == versions[0].pk, "can_publish": principal.can("manage_policies"),
    }, title=f"Policy {name} v{shown.version}")


@portal_view("GET", "POST")
def policy_publish(request: HttpRequest) -> HttpResponse:
    principal = portal_principal(request)
    principal.require("manage_policies", action="governance.policy.published")
    context: dict[str, Any] = {}
    status = 200
    if request.method == "GET":
        base = request.GET.get("from", "")
        initial = {}
        if base:
            row = PromotionPolicy.objects.filter(name=base).order_by("-version").first()
            if row is not None:
                initial["document"] = _yaml(row)
        form = PolicyForm(initial=initial)
    else:
        form = PolicyForm(request.POST)
        if form.is_valid():
            text, fmt = form.cleaned_data["document"], form.cleaned_data["format"]
            try:
                policy = parse_policy(text, fmt=fmt)
            except PolicyError as exc:
                context["errors"] = exc.errors
                status = 400
            else:
                digest = policy.digest()
                current = PromotionPolicy.objects.filter(name=policy.name).order_by("-version").first()
                if request.POST.get("publish") and form.cleaned_data["previewed"] == digest:
                    try:
                        row = promotions.policy_publish(actor=principal, text=text, fmt=fmt)
                    except PermissionDenied:
                        raise
                    except DomainError as exc:
                        context["errors"] = [exc.message]
                        status = exc.status_code
                    else:
                        messages.success(request, f"Published {row.name} v{row.version}; it is in force now.")
                        return redirect("admin:portal-policy", name=row.name)
                new_text = dump_policy(policy, fmt="yaml")
                context.update({
                    "preview": new_text, "digest": digest, "current": current, "name": policy.name,
                    "unchanged": current is not None and current.digest == digest,
                    "diff": diff_lines(
                        _yaml(current) if current else "", new_text,
                        old_label=f"{policy.name} v{current.version} (in force)" if current else "(none)",
                        new_label=f"{policy.name} (new)"),
                })
                form = PolicyForm(initial={"document": text, "format": fmt, "previewed": digest})
        else:
            status = 400
    return page(request, "portal/policy_publish.html", {"form": form, **context},
                title="Publish a policy version", status=status)
