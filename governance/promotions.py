"""Gated promotions: policy versions, promotion requests, approvals, waivers, signed receipts.

The only way a version enters staging or production. A request is judged by the one policy in
force for its model and stage (``governance.gates.evaluate``, a pure function of the evidence);
when every gate passes, the stage moves in the same transaction (``registry.services.stage_move``)
and the decision is signed. Each service appends exactly one audit event.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from audits.core.canonical import canonical_bytes
from audits.core.note import sign_note
from audits.keys import signing_key
from audits.services import Target, audit_append
from governance.access import Principal
from governance.errors import Conflict, ValidationFailed
from governance.gates import ApprovalFacts, Decision, Evidence, ReportFacts, VersionFacts, WaiverFacts, evaluate
from governance.models import (
    OPEN_PROMOTION_STATES,
    Approval,
    PromotionKind,
    PromotionPolicy,
    PromotionRequest,
    PromotionState,
    Waiver,
)
from governance.notifications import notify_promotion_decision
from governance.policy import Policy, parse_policy, policy_from_data
from governance.queries import Compiled, CompiledInsert, compiled_update
from governance.roles import ROLES
from registry.models import SINGLE_HOLDER_STAGES, ModelVersion, RegisteredModel, StageAssignment
from registry.services import lock_model_reserving, model_target, stage_move, version_target

RECEIPT_TYPE = "govaudit.promotion-decision/v1"
MAX_WAIVER_DAYS = 180


def _policy_target(policy: PromotionPolicy) -> Target:
    return Target("governance.policy", str(policy.pk), f"{policy.name} v{policy.version}")


def _promotion_target(req: PromotionRequest) -> Target:
    return Target("governance.promotion", str(req.pk),
                  f"{req.model.name} v{req.version.version} to {req.target_stage}")


# --- Policies ------------------------------------------------------------------------------------

def policy_publish(*, actor: Principal, text: str, fmt: str = "yaml") -> PromotionPolicy:
    """Publish a policy document as the next version of its name; an unchanged document is a 409."""
    actor.require("manage_policies", action="governance.policy.published")
    if fmt not in ("yaml", "json"):
        raise ValidationFailed("format must be 'yaml' or 'json'.", code="invalid_format")
    policy = parse_policy(text, fmt=fmt)  # PolicyError (400) lists every problem with its location
    with transaction.atomic():
        latest = PromotionPolicy.objects.select_for_update().filter(name=policy.name).order_by("-version").first()
        if latest is not None and latest.digest == policy.digest():
            raise Conflict(f"Policy {policy.name} v{latest.version} already has exactly this content.",
                           code="policy_unchanged", details={"version": latest.version})
        try:
            with transaction.atomic():
                row = PromotionPolicy.objects.create(
                    name=policy.name, version=(latest.version + 1) if latest else 1, document=policy.to_data(),
                    digest=policy.digest(), target_stage=policy.target_stage, kind=policy.kind,
                    published_by=actor.snapshot())
        except IntegrityError as exc:
            raise Conflict(f"Policy {policy.name} was published by someone else at the same moment; retry.",
                           code="concurrent_publish") from exc
        audit_append(actor=actor.snapshot(), action="governance.policy.published", target=_policy_target(row),
                     payload={"name": row.name, "version": row.version, "digest": row.digest,
                              "previous_digest": latest.digest if latest else None, "document": row.document})
    return row


_PARSED: dict[str, Policy] = {}

# The reads every promotion makes, compiled once per connection (governance.queries.Compiled):
# the same shapes on every request, so only their values change.
_POLICY_ROWS = Compiled(
    "policy_rows", lambda target_stage, kind: PromotionPolicy.objects.filter(target_stage=target_stage, kind=kind)
    .defer("document").order_by("name", "-version"), target_stage=str, kind=str)


def _reports_of(version_id: int) -> Any:
    """A version's reports with the digests of the datasets they point at (three joined columns)."""
    from monitoring.models import Report  # monitoring imports this module

    return (Report.objects.filter(version_id=version_id).order_by("created_at", "id")
            .annotate(**{f"{role}_sha256": F(f"{role}__sha256") for role in ("reference", "current", "evaluation")}))


_REPORT_ROWS = Compiled("report_rows", _reports_of, version_id=int)
_LIVE_WAIVERS = Compiled("live_waivers", lambda version_id: Waiver.objects.filter(version_id=version_id,
                                                                                  revoked_at__isnull=True),
                         version_id=int)
_INSERT_REQUEST = CompiledInsert(PromotionRequest)
_INSERT_KEYED_REQUEST = CompiledInsert(PromotionRequest, with_key=True)
_OPEN_REQUEST = Compiled(
    "open_promotion", lambda model_id, target_stage: PromotionRequest.objects.filter(
        model_id=model_id, target_stage=target_stage, state__in=OPEN_PROMOTION_STATES).order_by(),
    model_id=int, target_stage=str)
_OPEN_OR_REPLAYED = Compiled(
    "open_or_replayed_promotion", lambda model_id, target_stage, user_id, key: PromotionRequest.objects.filter(
        Q(model_id=model_id, target_stage=target_stage, state__in=OPEN_PROMOTION_STATES)
        | Q(requested_by_id=user_id, idempotency_key=key)).order_by(),
    model_id=int, target_stage=str, user_id=int, key=str)


def _parsed(row: PromotionPolicy) -> Policy:
    """The policy a stored version holds, parsed once per process.

    A published version never changes and its digest names its content, so the digest is a safe
    key; every request judged by the policy would otherwise rebuild it from the document.
    """
    policy = _PARSED.get(row.digest)
    if policy is None:
        if len(_PARSED) >= 256:
            _PARSED.clear()
        policy = _PARSED[row.digest] = policy_from_data(row.document)
    return policy


def policy_in_force(*, model: RegisteredModel, stage: str,
                    kind: str = PromotionKind.PROMOTION) -> tuple[PromotionPolicy, Policy] | None:
    """The policy that decides requests of ``kind`` for ``model`` to enter ``stage``.

    The latest version of each policy name is in force. A policy naming the model beats one that
    matches by risk tier; two equally specific policies are a configuration error (409), never a
    silent choice. A rollback with no rollback policy in scope is judged by the stage's promotion
    policy: stricter, never ungated.
    """
    latest: dict[str, PromotionPolicy] = {}
    # Without the documents: a version's parsed policy is cached by digest (``_parsed``), and a
    # document is read (one query) only the first time a process meets that version.
    for row in _POLICY_ROWS.all(target_stage=stage, kind=kind):
        latest.setdefault(row.name, row)
    named, tiered = [], []
    for row in latest.values():
        policy = _parsed(row)
        if not policy.applies_to(model_name=model.name, risk_tier=model.risk_tier, stage=stage, kind=kind):
            continue
        (named if model.name in policy.models else tiered).append((row, policy))
    for group in (named, tiered):
        if len(group) > 1:
            raise Conflict(f"Policies {sorted(r.name for r, _ in group)} all apply to {model.name} -> {stage}"
                           f"{' (rollback)' if kind == PromotionKind.ROLLBACK else ''}; a compliance officer must "
                           "narrow their scopes.", code="ambiguous_policy")
        if group:
            return group[0]
    if kind == PromotionKind.ROLLBACK:
        return policy_in_force(model=model, stage=stage)
    return None


# --- Waivers -------------------------------------------------------------------------------------

def waiver_grant(*, actor: Principal, version: ModelVersion, gate: str, justification: str,
                 expires_at: datetime) -> Waiver:
    """Waive one gate (by its key) for one version until ``expires_at``."""
    actor.require("grant_waiver", target=version_target(version), action="governance.waiver.granted")
    now = timezone.now()
    if not gate or len(gate) > 200:
        raise ValidationFailed("gate must be the key of a gate as shown in a decision, e.g. "
                               "'validation_metric:accuracy>=0.85'.", code="invalid_gate")
    if gate.startswith("approvals"):
        raise ValidationFailed("Approvals cannot be waived: separation of duties always applies.",
                               code="not_waivable")
    if len(justification.strip()) < 10:
        raise ValidationFailed("Give a justification of at least 10 characters; auditors will read it.",
                               code="justification_required")
    if expires_at <= now or expires_at > now + timedelta(days=MAX_WAIVER_DAYS):
        raise ValidationFailed(f"expires_at must be in the future and within {MAX_WAIVER_DAYS} days.",
                               code="invalid_expiry")
    with transaction.atomic():
        waiver = Waiver.objects.create(version=version, gate=gate, justification=justification, expires_at=expires_at,
                                       granted_by=actor.user if actor.system is None else None)
        audit_append(actor=actor.snapshot(), action="governance.waiver.granted", target=version_target(version),
                     payload={"waiver": waiver.pk, "gate": gate, "justification": justification,
                              "expires_at": expires_at.isoformat()})
    return waiver


def waiver_revoke(*, actor: Principal, waiver: Waiver) -> Waiver:
    """End a waiver before its expiry."""
    actor.require("grant_waiver", target=version_target(waiver.version), action="governance.waiver.revoked")
    with transaction.atomic():
        waiver = Waiver.objects.select_for_update().select_related("version__model").get(pk=waiver.pk)
        if waiver.revoked_at is not None:
            raise Conflict("This waiver was already revoked.", code="already_revoked")
        waiver.revoked_at = timezone.now()
        waiver.save(update_fields=["revoked_at"])
        audit_append(actor=actor.snapshot(), action="governance.waiver.revoked", target=version_target(waiver.version),
                     payload={"waiver": waiver.pk, "gate": waiver.gate})
    return waiver


# --- Evidence and decisions ----------------------------------------------------------------------

def _report_facts(version: ModelVersion) -> list[ReportFacts]:
    """The version's reports as gate facts, each checked against the inputs digest it was requested with.

    The digest is recomputed from this version's artifact, the digests of the datasets the report
    row points at (three columns joined in, not the dataset rows) and its options.
    """
    from monitoring.services import report_inputs_digest

    roles = ("reference", "current", "evaluation")
    facts = []
    for report in _REPORT_ROWS.all(version_id=version.pk):
        datasets = {role: getattr(report, f"{role}_sha256") for role in roles
                    if getattr(report, f"{role}_sha256") is not None}
        intact = report.inputs_digest == report_inputs_digest(
            kind=report.kind, artifact_sha256=version.artifact_sha256, datasets=datasets, options=report.options or {})
        facts.append(ReportFacts(
            id=report.pk, kind=report.kind, status=report.status,
            artifact_sha256=version.artifact_sha256, datasets_registered=True, inputs_intact=intact,
            finished_at=report.finished_at, result=report.result, result_digest=report.result_digest or "",
            error_code=report.error_code, error_message=report.error_message, options=report.options or {}))
    return facts


def approval_rows(req: PromotionRequest, *, new: bool = False) -> list[Approval]:
    """The request's approvals with their users, read once per decision and kept on the request.

    Gates, receipt and API answer (``PromotionOut``) all use them, kept as ``req.approval_rows``; a
    request created in this very transaction has none, so nothing is read for it.
    """
    rows = getattr(req, "approval_rows", None)
    if rows is None:
        rows = [] if new else list(req.approvals.select_related("user").order_by("decided_at", "id"))
        req.approval_rows = rows
    return rows


def _live_waivers(version: ModelVersion) -> list[Waiver]:
    return _LIVE_WAIVERS.all(version_id=version.pk)


def _waiver_facts(waivers: list[Waiver]) -> list[WaiverFacts]:
    return [WaiverFacts(id=w.pk, gate=w.gate, expires_at=w.expires_at, justification=w.justification,
                        granted_by_id=w.granted_by_id or 0) for w in waivers]


def _evidence(req: PromotionRequest, now: datetime, waivers: list[Waiver]) -> Evidence:
    version = req.version
    approvals = [ApprovalFacts(id=a.pk, user_id=a.user_id, roles=frozenset(a.roles), decided_at=a.decided_at,
                               decision=a.decision) for a in approval_rows(req)]
    return Evidence(version=VersionFacts(artifact_sha256=version.artifact_sha256, created_by_id=version.created_by_id),
                    requester_id=req.requested_by_id, now=now, reports=_report_facts(version),
                    approvals=approvals, waivers=_waiver_facts(waivers))


def _state_for(decision: Decision) -> str:
    if decision.status == "failed":
        return PromotionState.BLOCKED
    if decision.status == "passed":
        return PromotionState.APPROVED
    evidence_waiting = any(r.status == "waiting" and r.type != "approvals" for r in decision.results)
    return PromotionState.WAITING_FOR_EVIDENCE if evidence_waiting else PromotionState.AWAITING_APPROVAL


def _receipt(req: PromotionRequest, now: datetime, waivers: list[Waiver] | None = None) -> str:
    """A signed note whose text is the canonical JSON of everything the decision rested on.

    ``waivers``: the version's live waivers as the decision read them (read here when not given).
    """
    decision = req.decision or {}
    if waivers is None:
        waivers = _live_waivers(req.version)
    used = sorted({(e["id"], e.get("digest", "")) for r in decision.get("results", []) for e in r.get("evidence", [])
                   if e.get("kind") == "report"})
    body = {
        "type": RECEIPT_TYPE, "promotion": req.pk, "kind": req.kind, "outcome": req.state,
        "model": req.model.name, "version": req.version.version, "artifact_sha256": req.version.artifact_sha256,
        "target_stage": req.target_stage, "reason": req.reason, "requested_by": req.requester,
        "policy": ({"name": req.policy.name, "version": req.policy.version, "digest": req.policy.digest}
                   if req.policy else None),
        "gates": decision.get("results", []),
        "reports": [{"id": i, "result_digest": d} for i, d in used],
        "waivers": [{"id": w.pk, "gate": w.gate, "justification": w.justification,
                     "expires_at": w.expires_at.isoformat(), "granted_by": w.granted_by_id}
                    for w in waivers
                    if any(r.get("waived") and r.get("gate") == w.gate for r in decision.get("results", []))],
        "approvals": [{"user": a.user.get_username(), "roles": a.roles, "decision": a.decision,
                       "comment": a.comment, "decided_at": a.decided_at.isoformat()}
                      for a in approval_rows(req)],
        "decided_at": now.isoformat(),
    }
    return sign_note(canonical_bytes(body).decode("utf-8") + "\n", [signing_key()]).decode("utf-8")


def _decide(req: PromotionRequest, actor: Principal, now: datetime, *, model: RegisteredModel | None = None,
            write: bool = True) -> None:
    """Evaluate the gates and move the request (and, when everything passed, the stage).

    ``model``: the request's model, already locked by the caller in this transaction.
    ``write``: save the decision on the request's row; False when the caller inserts the row next.
    """
    waivers: list[Waiver] | None = None
    if req.policy is None:
        req.state = PromotionState.BLOCKED
        req.decision = {"status": "failed", "policy": None, "evaluated_at": now.isoformat(), "results": [{
            "gate": "policy", "type": "policy", "status": "failed", "waived": False, "evidence": [],
            "reason": f"No promotion policy applies to {req.model.name} ({req.model.risk_tier} risk) going to "
                      f"{req.target_stage}; nothing enters a stage ungated. A compliance officer must publish one."}]}
    else:
        # A waiver only ever turns a failed gate into a pass (gates.apply_waivers), so the
        # version's waivers are read only when a gate failed without them: the usual passing
        # request is judged in one read fewer, with the same result.
        policy, evidence = _parsed(req.policy), _evidence(req, now, [])
        decision = evaluate(policy, evidence)
        waivers = []
        if any(r.status == "failed" for r in decision.results):
            waivers = _live_waivers(req.version)
            if waivers:
                decision = evaluate(policy, replace(evidence, waivers=_waiver_facts(waivers)))
        req.decision = decision.to_data() | {"policy": {"name": req.policy.name, "version": req.policy.version,
                                                        "digest": req.policy.digest}}
        req.state = _state_for(decision)
    if req.state == PromotionState.APPROVED:
        stage_move(actor=actor, version=req.version, stage=req.target_stage,
                   reason=f"promotion #{req.pk}: {req.reason}", locked_model=model)
        req.state = PromotionState.PROMOTED
    if req.state not in OPEN_PROMOTION_STATES:
        req.decided_at = now
        req.receipt = _receipt(req, now, waivers)
    req.updated_at = now
    if write:
        compiled_update(req, ["state", "decision", "receipt", "decided_at", "updated_at"])


def _payload(req: PromotionRequest) -> dict[str, Any]:
    return {"promotion": req.pk, "kind": req.kind, "model": req.model.name, "version": req.version.version,
            "artifact_sha256": req.version.artifact_sha256, "target_stage": req.target_stage, "state": req.state,
            "policy": req.decision.get("policy"),
            "gates": [{"gate": r["gate"], "status": r["status"], "waived": r.get("waived", False)}
                      for r in req.decision.get("results", [])]}


# --- Requests ------------------------------------------------------------------------------------

def promotion_request(*, actor: Principal, version: ModelVersion, target_stage: str, reason: str,
                      idempotency_key: str = "") -> tuple[PromotionRequest, bool]:
    """Ask for ``version`` to enter ``target_stage``; returns (request, created).

    The gates are evaluated at once. A replay with the same ``idempotency_key`` returns the first
    request unchanged; a second open request for the same model and stage is a 409.
    """
    return _open_request(actor=actor, version=version, target_stage=target_stage, reason=reason,
                         idempotency_key=idempotency_key, kind=PromotionKind.PROMOTION)


def previous_holder(*, model: RegisteredModel, stage: str) -> ModelVersion:
    """The version that held ``stage`` just before the current holder (409 if there is none).

    That is the version whose stint in the stage ended most recently; a version that has since
    moved on to another stage still counts (promoting it back archives nothing it holds now,
    since ``stage_move`` ends its current stint).
    """
    current = StageAssignment.objects.filter(model=model, stage=stage, ended_at__isnull=True).first()
    if current is None:
        raise Conflict(f"No version of {model.name} holds {stage}; there is nothing to roll back.",
                       code="nothing_to_roll_back")
    earlier = (StageAssignment.objects.filter(model=model, stage=stage, ended_at__isnull=False)
               .exclude(version_id=current.version_id).select_related("version").order_by("-ended_at", "-id").first())
    if earlier is None:
        raise Conflict(f"{model.name} v{current.version.version} is the first version to hold {stage}; there is no "
                       "earlier holder to roll back to.", code="nothing_to_roll_back")
    return earlier.version


def promotion_rollback(*, actor: Principal, model: RegisteredModel, stage: str, reason: str,
                       idempotency_key: str = "") -> tuple[PromotionRequest, bool]:
    """Ask to return ``stage`` to the version that held it before the current holder.

    A rollback is a promotion like any other (the same states, approvals, receipt and audit
    event, with ``kind: rollback``), judged by the rollback policy in force for the stage, or by
    its promotion policy when there is none: rolling back is never a way around the gates.
    """
    if stage not in SINGLE_HOLDER_STAGES:
        raise ValidationFailed(f"stage must be one of {list(SINGLE_HOLDER_STAGES)}.", code="invalid_stage")
    actor.require("request_promotion", target=model_target(model), action="governance.promotion.requested")
    version = previous_holder(model=model, stage=stage)
    return _open_request(actor=actor, version=version, target_stage=stage, reason=reason,
                         idempotency_key=idempotency_key, kind=PromotionKind.ROLLBACK)


@contextmanager
def _one_open_request(req: PromotionRequest) -> Iterator[None]:
    """The request's insert broke a uniqueness rule: a 409, the whole transaction abandoned (no savepoint).

    Only the request's own insert runs inside it (alone, or carrying the requested event).
    """
    try:
        yield
    except IntegrityError as exc:
        raise Conflict(f"Another promotion of {req.model.name} to {req.target_stage} was opened at the same moment.",
                       code="promotion_open") from exc


def _open_request(*, actor: Principal, version: ModelVersion, target_stage: str, reason: str, idempotency_key: str,
                  kind: str) -> tuple[PromotionRequest, bool]:
    actor.require("request_promotion", target=version_target(version), action="governance.promotion.requested")
    if target_stage not in SINGLE_HOLDER_STAGES:
        raise ValidationFailed(f"target_stage must be one of {list(SINGLE_HOLDER_STAGES)}.", code="invalid_stage")
    if not reason or len(reason) > 2000:
        raise ValidationFailed("Say why (reason, 1-2000 characters); approvers and auditors read it.",
                               code="reason_required")
    if len(idempotency_key) > 128:
        raise ValidationFailed("Idempotency-Key must be at most 128 characters.", code="invalid_idempotency_key")
    user = actor.user if actor.system is None else None
    with transaction.atomic():
        # The model's lock, and the key the new request will have where the database hands out
        # keys ahead (PostgreSQL): the request is then judged first and inserted once, decided.
        model, key = lock_model_reserving(version.model, PromotionRequest)
        # The request this key already made, and the open request for the model and stage (at
        # most one: a partial unique constraint), in one read under the model's lock.
        if idempotency_key and user is not None:
            found = _OPEN_OR_REPLAYED.all(model_id=model.pk, target_stage=target_stage, user_id=user.pk,
                                          key=idempotency_key)
        else:
            found = _OPEN_REQUEST.all(model_id=model.pk, target_stage=target_stage)
        earlier = next((r for r in found if idempotency_key and user is not None and r.requested_by_id == user.pk
                        and r.idempotency_key == idempotency_key), None)
        if earlier is not None:
            if (earlier.version_id, earlier.target_stage, earlier.reason, earlier.kind) != \
                    (version.pk, target_stage, reason, kind):
                raise Conflict("This Idempotency-Key was already used for a different promotion request; "
                               "use a new key for a new request.", code="idempotency_key_reused")
            return earlier, False
        if model.archived:
            raise Conflict(f"Model {model.name} is archived.", code="model_archived")
        open_request = next((r for r in found if r.state in OPEN_PROMOTION_STATES and r.model_id == model.pk
                             and r.target_stage == target_stage), None)
        if open_request is not None:
            raise Conflict(f"Promotion #{open_request.pk} of {model.name} v{open_request.version.version} to "
                           f"{target_stage} is still open ({open_request.state}); cancel it or wait for its decision.",
                           code="promotion_open", details={"promotion": open_request.pk})
        if kind == PromotionKind.ROLLBACK and previous_holder(model=model, stage=target_stage).pk != version.pk:
            raise Conflict(f"The stage {target_stage} of {model.name} changed hands meanwhile; ask again.",
                           code="stage_changed")
        in_force = policy_in_force(model=model, stage=target_stage, kind=kind)
        now = timezone.now()
        req = PromotionRequest(
            model=model, version=version, target_stage=target_stage, kind=kind, reason=reason,
            requested_by=user, requester=actor.snapshot(), idempotency_key=idempotency_key if user else "",
            policy=in_force[0] if in_force else None, state=PromotionState.WAITING_FOR_EVIDENCE,
            created_at=now, updated_at=now)
        # With a key reserved, judged first and inserted once, decided; elsewhere (SQLite)
        # inserted, judged, then updated. Either way in one transaction: no reader ever sees
        # the request half-decided.
        req.pk = key
        approval_rows(req, new=True)
        along = None
        if req.pk is None:
            with _one_open_request(req):
                _INSERT_REQUEST.insert([req])
            _decide(req, actor, now, model=model)
        else:
            # Decided, then inserted once, together with the audit event that records it.
            _decide(req, actor, now, model=model, write=False)
            along = _INSERT_KEYED_REQUEST.statement([req])[:2]
        with _one_open_request(req):
            audit_append(actor=actor.snapshot(), action="governance.promotion.requested",
                         target=_promotion_target(req), payload=_payload(req) | {"reason": reason}, along=along)
        if along is not None:
            _INSERT_KEYED_REQUEST.inserted([req])
        notify_promotion_decision(req, "governance.promotion.requested")
    return req, True


def _open_for_update(req: PromotionRequest) -> PromotionRequest:
    req = (PromotionRequest.objects.select_for_update(of=("self",)).select_related("model", "version", "policy")
           .get(pk=req.pk))
    if req.state not in OPEN_PROMOTION_STATES:
        raise Conflict(f"Promotion #{req.pk} is already {req.state}; it takes no more decisions.",
                       code="promotion_closed", details={"state": req.state})
    return req


def _decide_as_person(*, actor: Principal, req: PromotionRequest, decision: str, comment: str) -> PromotionRequest:
    action = f"governance.promotion.{'approved' if decision == 'approved' else 'rejected'}"
    actor.require("approve_promotion", target=_promotion_target(req), action=action)
    if decision == "rejected" and not comment.strip():
        raise ValidationFailed("A rejection needs a comment saying why.", code="comment_required")
    user = actor.user
    if user.pk in (req.requested_by_id, req.version.created_by_id):
        who = "requested this promotion" if user.pk == req.requested_by_id else "registered this version"
        actor.refuse(f"You {who}; separation of duties needs someone else to decide.",
                     code="separation_of_duties", target=_promotion_target(req), action=action)
    with transaction.atomic():
        req = _open_for_update(req)
        if Approval.objects.filter(request=req, user=user).exists():
            raise Conflict("You already decided on this promotion.", code="already_decided")
        roles = sorted(g.name for g in user.groups.all() if g.name in ROLES)
        now = timezone.now()
        Approval.objects.create(request=req, user=user, roles=roles, decision=decision, comment=comment,
                                decided_at=now)
        if decision == "rejected":
            req.state = PromotionState.REJECTED
            req.decision = req.decision | {"rejected_by": user.get_username(), "comment": comment}
            req.decided_at = now
            req.updated_at = now
            req.receipt = _receipt(req, now)
            req.save()
        else:
            _decide(req, actor, now)
        audit_append(actor=actor.snapshot(), action=action, target=_promotion_target(req),
                     payload=_payload(req) | {"comment": comment})
        notify_promotion_decision(req, action)
    return req


def promotion_approve(*, actor: Principal, request: PromotionRequest, comment: str = "") -> PromotionRequest:
    """Approve; when this completes the approvals and every other gate passes, the stage moves."""
    return _decide_as_person(actor=actor, req=request, decision="approved", comment=comment)


def promotion_reject(*, actor: Principal, request: PromotionRequest, comment: str) -> PromotionRequest:
    """Reject, with a comment; the request is closed."""
    return _decide_as_person(actor=actor, req=request, decision="rejected", comment=comment)


def promotion_cancel(*, actor: Principal, request: PromotionRequest) -> PromotionRequest:
    """Withdraw an open request (its requester, or whoever may request promotions for the model)."""
    actor.require("request_promotion", target=_promotion_target(request), action="governance.promotion.cancelled")
    with transaction.atomic():
        req = _open_for_update(request)
        now = timezone.now()
        req.state = PromotionState.CANCELLED
        req.decided_at = now
        req.updated_at = now
        req.receipt = _receipt(req, now)
        req.save()
        audit_append(actor=actor.snapshot(), action="governance.promotion.cancelled", target=_promotion_target(req),
                     payload=_payload(req))
        notify_promotion_decision(req, "governance.promotion.cancelled")
    return req


def promotion_reevaluate(*, actor: Principal, request: PromotionRequest) -> PromotionRequest:
    """Judge an open request again (its reports finished, a waiver was granted, time passed)."""
    with transaction.atomic():
        req = _open_for_update(request)
        before = req.state
        _decide(req, actor, timezone.now())
        audit_append(actor=actor.snapshot(), action="governance.promotion.reevaluated", target=_promotion_target(req),
                     payload=_payload(req) | {"previous_state": before})
        notify_promotion_decision(req, "governance.promotion.reevaluated", previous_state=before)
    return req


def promotion_expire(*, actor: Principal, older_than: timedelta) -> int:
    """Close requests left open longer than ``older_than``; one event per expired request."""
    cutoff = timezone.now() - older_than
    expired = 0
    for pk in PromotionRequest.objects.filter(state__in=OPEN_PROMOTION_STATES, created_at__lt=cutoff) \
            .values_list("pk", flat=True):
        with transaction.atomic():
            req = PromotionRequest.objects.select_for_update(of=("self",)).select_related("model", "version", "policy").get(pk=pk)
            if req.state not in OPEN_PROMOTION_STATES:
                continue
            now = timezone.now()
            req.state, req.decided_at, req.updated_at = PromotionState.EXPIRED, now, now
            req.receipt = _receipt(req, now)
            req.save()
            audit_append(actor=actor.snapshot(), action="governance.promotion.expired", target=_promotion_target(req),
                         payload=_payload(req))
            notify_promotion_decision(req, "governance.promotion.expired")
            expired += 1
    return expired

