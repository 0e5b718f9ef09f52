"""Policy documents: parsing, located validation errors, safe YAML, canonical export and digest.

Pure tests: no database. Error messages are asserted exactly, because they are the interface a
policy author sees (and docs/policies.md quotes them).
"""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from governance.policy import (
    MAX_DOCUMENT_BYTES, RISK_TIERS, STAGES, ApprovalsGate, BiasMetricGate, DriftGate, EvidenceBindingGate,
    EvidenceFreshnessGate, PolicyError, ValidationMetricGate, dump_policy, parse_policy, policy_from_data,
)

EXAMPLE = """\
name: production-high-risk
description: High and critical models going to production.
target_stage: production
applies_to:
  risk_tiers: [critical, high]
  models: [credit-scoring]
gates:
  - type: validation_metric
    metric: accuracy
    op: ">="
    threshold: 0.85
  - type: bias_metric
    metric: demographic_parity_difference
    sensitive_feature: sex
    op: "<="
    threshold: 0.1
  - type: drift
    max_share_drifted: 0.2
    p_val: 0.05
  - type: evidence_freshness
    max_age_days: 30
  - type: evidence_binding
  - type: approvals
    count: 2
    roles: [compliance_officer, approver]
"""


def base() -> dict[str, Any]:
    """A valid document as data, to break one thing at a time."""
    return yaml.safe_load(EXAMPLE)


def errors_of(data: Any) -> list[str]:
    with pytest.raises(PolicyError) as info:
        policy_from_data(data)
    return info.value.errors


def with_gate(gate: dict[str, Any]) -> dict[str, Any]:
    doc = base()
    doc["gates"] = [gate]
    return doc


def test_example_parses_into_normalised_policy() -> None:
    policy = parse_policy(EXAMPLE)
    assert policy.name == "production-high-risk"
    assert policy.target_stage == "production"
    assert policy.risk_tiers == ("high", "critical")  # tier order, not document order
    assert policy.models == ("credit-scoring",)
    assert policy.gates == (
        ValidationMetricGate("accuracy", ">=", 0.85),
        BiasMetricGate("demographic_parity_difference", "sex", "<=", 0.1),
        DriftGate(0.2, False, 0.05),
        EvidenceFreshnessGate(30),
        EvidenceBindingGate(),
        ApprovalsGate(2, ("approver", "compliance_officer")),
    )
    assert [g.key for g in policy.gates] == [
        "validation_metric:accuracy>=0.85",
        "bias_metric:demographic_parity_difference[sex]<=0.1",
        "drift:share_drifted<=0.2,p_val=0.05",
        "evidence_freshness:max_age_days=30",
        "evidence_binding",
        "approvals:2[approver,compliance_officer]",
    ]


def test_scope_is_a_union_of_tiers_and_names_for_the_target_stage() -> None:
    policy = parse_policy(EXAMPLE)
    assert policy.applies_to(model_name="x", risk_tier="high", stage="production")
    assert policy.applies_to(model_name="credit-scoring", risk_tier="low", stage="production")
    assert not policy.applies_to(model_name="x", risk_tier="low", stage="production")
    assert not policy.applies_to(model_name="x", risk_tier="high", stage="staging")


def test_mirrored_choices_match_the_django_models() -> None:
    """The pure core mirrors registry choices rather than importing the ORM; keep them equal."""
    from registry.models import RiskTier, Stage

    assert RISK_TIERS == tuple(RiskTier.values)
    assert set(STAGES) == set(Stage.values) - {"archived"}


# --- validation errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d.update(colour="red"),
     ["colour: unknown key; expected one of applies_to, description, format_version, gates, kind, name, target_stage"]),
    (lambda d: d.pop("name"), ["name: required"]),
    (lambda d: d.update(name="Prod High"),
     ["name: must be a slug: 1-64 lowercase letters, digits and hyphens, starting and ending with a letter or digit"]),
    (lambda d: d.update(name="-x"),
     ["name: must be a slug: 1-64 lowercase letters, digits and hyphens, starting and ending with a letter or digit"]),
    (lambda d: d.update(description=["x"]), ["description: must be text of at most 2000 characters"]),
    (lambda d: d.update(description="x" * 2001), ["description: must be text of at most 2000 characters"]),
    (lambda d: d.update(target_stage="archived"), ["target_stage: must be one of staging, production"]),
    (lambda d: d.update(format_version=2), ["format_version: must be 1 (the only format this server reads)"]),
    (lambda d: d.update(applies_to={}), ["applies_to: must name at least one risk tier or model"]),
    (lambda d: d.update(applies_to={"risk_tiers": [], "models": []}),
     ["applies_to: must name at least one risk tier or model"]),
    (lambda d: d.update(applies_to=["high"]),
     ["applies_to: must be a mapping (with risk_tiers and/or models), got a list"]),
    (lambda d: d["applies_to"].update(risk_tiers=["high", "extreme"]),
     ["applies_to.risk_tiers[1]: unknown risk tier 'extreme'; expected one of low, medium, high, critical"]),
    (lambda d: d["applies_to"].update(risk_tiers=["high", "high"]),
     ["applies_to.risk_tiers[1]: 'high' is listed twice"]),
    (lambda d: d["applies_to"].update(risk_tiers="high"),
     ["applies_to.risk_tiers: must be a list of risk tiers, got the text 'high'"]),
    (lambda d: d["applies_to"].update(models=["bad name"]),
     ["applies_to.models[0]: 'bad name' is not a model name (1-128 letters, digits, '.', '_' or '-')"]),
    (lambda d: d["applies_to"].update(scope="all"),
     ["applies_to.scope: unknown key; expected one of models, risk_tiers"]),
    (lambda d: d.update(gates=[]), ["gates: must be a non-empty list of gates"]),
    (lambda d: d.update(gates=None), ["gates: must be a non-empty list of gates, got nothing (null)"]),
    (lambda d: d.update(gates=[{"type": "approvals", "count": 1, "roles": ["approver"]}] * 51),
     ["gates: at most 50 gates, got 51"]),
])
def test_document_errors(mutate: Any, expected: list[str]) -> None:
    doc = base()
    mutate(doc)
    assert errors_of(doc) == expected


@pytest.mark.parametrize("gate, expected", [
    ("accuracy", ["gates[0]: must be a mapping with a 'type' key, got the text 'accuracy'"]),
    ({"metric": "accuracy"}, ["gates[0].type: required"]),
    ({"type": "magic"}, ["gates[0].type: unknown gate type 'magic'; expected one of approvals, bias_metric, drift, "
                         "evidence_binding, evidence_freshness, validation_metric"]),
    ({"type": "validation_metric", "metric": "accuracy", "op": ">=", "threshold": 1.5},
     ["gates[0].threshold: must be a number between 0 and 1"]),
    ({"type": "validation_metric", "metric": "accuracy", "op": ">=", "threshold": "0.8"},
     ["gates[0].threshold: must be a number between 0 and 1 (got the text '0.8'; write a plain decimal such as "
      "0.001 without quotes)"]),
    ({"type": "validation_metric", "metric": "accuracy", "op": ">=", "threshold": True},
     ["gates[0].threshold: must be a number between 0 and 1"]),
    ({"type": "validation_metric", "metric": "accuracy", "op": ">=", "threshold": float("nan")},
     ["gates[0].threshold: must be a number between 0 and 1"]),
    ({"type": "validation_metric", "metric": "rmse", "op": "<=", "threshold": -1},
     ["gates[0].threshold: must be a number >= 0"]),
    ({"type": "validation_metric", "metric": "r2", "op": ">=", "threshold": 2},
     ["gates[0].threshold: must be a number <= 1"]),
    ({"type": "validation_metric", "metric": "acc", "op": ">=", "threshold": 0.8},
     ["gates[0].metric: unknown validation metric 'acc'; expected one of accuracy, f1, log_loss, mae, precision, "
      "r2, recall, rmse, roc_auc"]),
    ({"type": "validation_metric", "metric": "accuracy", "op": "==", "threshold": 0.8},
     ["gates[0].op: must be one of '>=', '>', '<=', '<'"]),
    ({"type": "validation_metric", "metric": "accuracy", "op": "<=", "threshold": 0.8},
     ["gates[0].op: accuracy is better when higher; use '>=' or '>'"]),
    ({"type": "validation_metric", "metric": "accuracy", "op": ">=", "threshold": 0.8, "min_rows": 10},
     ["gates[0].min_rows: unknown key; expected one of metric, op, threshold, type"]),
    ({"type": "validation_metric", "metric": "accuracy"},
     ["gates[0].op: required", "gates[0].threshold: required"]),
    ({"type": "bias_metric", "metric": "demographic_parity_difference", "sensitive_feature": "sex", "op": ">=",
      "threshold": 0.1},
     ["gates[0].op: demographic_parity_difference is better when lower; use '<=' or '<'"]),
    ({"type": "bias_metric", "metric": "demographic_parity_ratio", "sensitive_feature": "sex", "op": ">=",
      "threshold": 0.8}, []),
    ({"type": "bias_metric", "metric": "disparate_impact", "sensitive_feature": "", "op": "<=", "threshold": 0.1},
     ["gates[0].metric: unknown bias metric 'disparate_impact'; expected one of demographic_parity_difference, "
      "demographic_parity_ratio, equalized_odds_difference, equalized_odds_ratio",
      "gates[0].sensitive_feature: must be the name of one column (non-empty text, at most 256 characters)"]),
    ({"type": "bias_metric", "metric": "equalized_odds_difference", "op": "<=", "threshold": 0.1},
     ["gates[0].sensitive_feature: required"]),
    ({"type": "drift"}, ["gates[0]: a drift gate needs max_share_drifted and/or require_no_drift: true"]),
    ({"type": "drift", "require_no_drift": False, "p_val": 0.05},
     ["gates[0]: a drift gate needs max_share_drifted and/or require_no_drift: true"]),
    ({"type": "drift", "require_no_drift": "yes"}, ["gates[0].require_no_drift: must be true or false"]),
    ({"type": "drift", "require_no_drift": True, "p_val": 0},
     ["gates[0].p_val: must be a number greater than 0 and less than 1"]),
    ({"type": "drift", "max_share_drifted": 20}, ["gates[0].max_share_drifted: must be a number between 0 and 1"]),
    ({"type": "evidence_freshness", "max_age_days": 0}, ["gates[0].max_age_days: must be an integer from 1 to 3650"]),
    ({"type": "evidence_freshness", "max_age_days": 7.5},
     ["gates[0].max_age_days: must be an integer from 1 to 3650"]),
    ({"type": "evidence_binding", "strict": True},
     ["gates[0].strict: unknown key; expected one of type"]),
    ({"type": "approvals", "count": 0, "roles": ["approver"]}, ["gates[0].count: must be an integer from 1 to 10"]),
    ({"type": "approvals", "count": 1, "roles": []}, ["gates[0].roles: must name at least one role"]),
    ({"type": "approvals", "count": 1, "roles": ["boss"]},
     ["gates[0].roles[0]: unknown role 'boss'; expected one of administrator, approver, auditor, "
      "compliance_officer, data_scientist, ml_engineer, viewer"]),
    ({"type": "approvals", "count": 1, "roles": ["pipeline"]},
     ["gates[0].roles[0]: 'pipeline' is a service account and cannot approve"]),
    ({"type": "approvals", "count": 1, "roles": ["approver", "approver"]},
     ["gates[0].roles[1]: 'approver' is listed twice"]),
    ({"type": "approvals", "count": 1}, ["gates[0].roles: required"]),
])
def test_gate_errors(gate: Any, expected: list[str]) -> None:
    doc = with_gate(gate)
    if expected:
        assert errors_of(doc) == expected
    else:
        policy_from_data(doc)


def test_duplicate_gates_are_located() -> None:
    doc = base()
    doc["gates"] += [
        {"type": "approvals", "count": 3, "roles": ["approver"]},
        {"type": "validation_metric", "metric": "accuracy", "op": ">", "threshold": 0.5},
        {"type": "bias_metric", "metric": "demographic_parity_difference", "sensitive_feature": "race", "op": "<=",
         "threshold": 0.1},
    ]
    assert errors_of(doc) == [
        "gates[6]: duplicates gates[5]: one approvals gate per policy",
        "gates[7]: duplicates gates[0]: one validation_metric gate per metric (accuracy)",
    ]


def test_evidence_gates_need_a_report_gate() -> None:
    doc = with_gate({"type": "evidence_freshness", "max_age_days": 30})
    doc["gates"].append({"type": "evidence_binding"})
    assert errors_of(doc) == [
        "gates[0]: evidence_freshness has no report to judge; add a validation_metric, bias_metric or drift gate",
        "gates[1]: evidence_binding has no report to judge; add a validation_metric, bias_metric or drift gate",
    ]


def test_every_error_is_reported_at_once() -> None:
    doc = base()
    doc["name"] = "X"
    doc["target_stage"] = "prod"
    doc["gates"][0]["threshold"] = 9
    doc["gates"][5]["roles"] = ["boss"]
    errors = errors_of(doc)
    assert [e.split(":")[0] for e in errors] == ["name", "target_stage", "gates[0].threshold", "gates[5].roles[0]"]


def test_policy_error_is_a_validation_failure_for_the_api() -> None:
    from governance.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as info:
        policy_from_data({"name": "x"})
    assert info.value.code == "invalid_policy"
    assert info.value.details == {"errors": ["target_stage: required", "applies_to: required", "gates: required"]}


# --- parsing text --------------------------------------------------------------------------------

def parse_errors(text: str | bytes, fmt: str = "yaml") -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, fmt=fmt)  # type: ignore[arg-type]
    return info.value.errors


def test_root_must_be_a_mapping() -> None:
    assert parse_errors("- a\n- b\n") == [
        "policy: must be a mapping (with keys name, target_stage, applies_to, gates), got a list"]
    assert parse_errors("") == [
        "policy: must be a mapping (with keys name, target_stage, applies_to, gates), got nothing (null)"]
    assert parse_errors('"just text"', fmt="json") == [
        "policy: must be a mapping (with keys name, target_stage, applies_to, gates), got the text 'just text'"]


def test_oversized_documents_are_refused_before_parsing() -> None:
    text = EXAMPLE + "#" * MAX_DOCUMENT_BYTES
    assert parse_errors(text) == [f"policy document is {len(text)} bytes; the limit is {MAX_DOCUMENT_BYTES}"]


def test_anchors_and_aliases_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" \
           "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    assert parse_errors(bomb) == ["line 1, column 4: YAML anchors and aliases (&name, *name) are not allowed in a "
                                  "policy; write every value out in full"]
    reused = EXAMPLE.replace("  - type: evidence_binding\n", "  - &g {type: evidence_binding}\n  - *g\n")
    assert parse_errors(reused)[0].startswith("line 22, column 5: YAML anchors and aliases")


def test_deep_nesting_is_refused_without_recursion() -> None:
    assert parse_errors("a: " + "[" * 5000 + "]" * 5000) == ["line 1, column 19: nested deeper than 16 levels"]


def test_yaml_duplicate_keys_are_errors_not_last_wins() -> None:
    text = EXAMPLE.replace("    threshold: 0.85\n", "    threshold: 0.85\n    threshold: 0.1\n")
    assert parse_errors(text) == ["YAML error at line 12, column 5: duplicate key 'threshold'"]


def test_yaml_python_tags_and_syntax_errors() -> None:
    assert parse_errors("name: !!python/object/apply:os.system ['true']\n") == [
        "YAML error at line 1, column 7: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'"]
    assert parse_errors("name: [unclosed\n") == [
        "YAML error at line 2, column 1: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence)"]
    assert parse_errors("a: 1\n---\nb: 2\n") == [
        "YAML error at line 2, column 1: but found another document (expected a single document in the stream)"]


def test_yaml_quirks_are_caught_by_validation() -> None:
    """PyYAML reads `1e-3` as text and `on` as a boolean; neither slips through as a number."""
    text = EXAMPLE.replace("threshold: 0.85", "threshold: 1e-3").replace("p_val: 0.05", "p_val: on")
    assert parse_errors(text) == [
        "gates[0].threshold: must be a number between 0 and 1 (got the text '1e-3'; write a plain decimal such as "
        "0.001 without quotes)",
        "gates[2].p_val: must be a number greater than 0 and less than 1",
    ]


def test_not_utf8() -> None:
    assert parse_errors(b"name: caf\xe9\n") == ["policy document is not UTF-8 text (byte 9)"]


def test_json_is_parsed_strictly() -> None:
    assert parse_errors('{"name": "a", "name": "b"}', fmt="json") == ["JSON error: duplicate object key 'name'"]
    assert parse_errors('{"threshold": NaN}', fmt="json") == ["JSON error: NaN is not JSON"]
    assert parse_errors("name: x", fmt="json") == ["JSON error: Expecting value: line 1 column 1 (char 0)"]


# --- export and digest ---------------------------------------------------------------------------

def test_round_trips_keep_the_digest() -> None:
    policy = parse_policy(EXAMPLE)
    digest = policy.digest()
    assert len(digest) == 64
    as_yaml = dump_policy(policy)
    as_json = dump_policy(policy, fmt="json")
    assert parse_policy(as_yaml) == policy
    assert parse_policy(as_json, fmt="json") == policy
    assert parse_policy(as_yaml).digest() == parse_policy(as_json, fmt="json").digest() == digest
    assert dump_policy(parse_policy(as_yaml)) == as_yaml  # export is a fixed point
    assert json.loads(as_json) == policy.to_data()
    assert list(yaml.safe_load(as_yaml)) == sorted(policy.to_data())


def test_digest_ignores_spelling_but_not_meaning() -> None:
    digest = parse_policy(EXAMPLE).digest()
    spelled = base()
    spelled["applies_to"]["risk_tiers"] = ["high", "critical"]
    spelled["gates"][5]["roles"] = ["approver", "compliance_officer"]
    spelled["gates"][0] = {"threshold": 0.85, "op": ">=", "metric": "accuracy", "type": "validation_metric"}
    spelled["gates"][3]["max_age_days"] = 30
    spelled["description"] = "High and critical models going to production."
    spelled["format_version"] = 1
    assert policy_from_data(spelled).digest() == digest
    assert parse_policy(json.dumps(spelled, indent=4), fmt="json").digest() == digest

    ints = copy.deepcopy(spelled)
    ints["gates"][0]["threshold"] = 1
    floats = copy.deepcopy(spelled)
    floats["gates"][0]["threshold"] = 1.0
    assert policy_from_data(ints).digest() == policy_from_data(floats).digest()

    stricter = copy.deepcopy(spelled)
    stricter["gates"][0]["threshold"] = 0.86
    assert policy_from_data(stricter).digest() != digest
    reordered = copy.deepcopy(spelled)
    reordered["gates"].reverse()
    assert policy_from_data(reordered).digest() != digest  # gate order is the evaluation order


def test_minimal_document_gets_defaults_in_canonical_form() -> None:
    policy = parse_policy('{"name": "staging-all", "target_stage": "staging", "applies_to": {"risk_tiers": ["low"]},'
                          ' "gates": [{"type": "drift", "require_no_drift": true}]}', fmt="json")
    assert policy.to_data() == {
        "format_version": 1, "name": "staging-all", "description": "", "target_stage": "staging",
        "applies_to": {"risk_tiers": ["low"], "models": []},
        "gates": [{"type": "drift", "max_share_drifted": None, "require_no_drift": True, "p_val": None}],
    }
    assert parse_policy(dump_policy(policy)).digest() == policy.digest()


def test_kind_defaults_to_promotion_and_rollback_policies_scope_only_rollbacks() -> None:
    promotion = parse_policy(EXAMPLE)
    assert promotion.kind == "promotion" and "kind" not in promotion.to_data()  # older digests stay valid
    assert parse_policy(EXAMPLE.replace("target_stage:", "kind: promotion\ntarget_stage:")).digest() == \
        promotion.digest()
    rollback = parse_policy(EXAMPLE.replace("target_stage:", "kind: rollback\ntarget_stage:"))
    assert rollback.kind == "rollback" and rollback.to_data()["kind"] == "rollback"
    assert rollback.digest() != promotion.digest()
    assert parse_policy(dump_policy(rollback)).digest() == rollback.digest()
    scope = {"model_name": "credit-scoring", "risk_tier": "low", "stage": "production"}
    assert promotion.applies_to(**scope) and not promotion.applies_to(**scope, kind="rollback")
    assert rollback.applies_to(**scope, kind="rollback") and not rollback.applies_to(**scope)
    doc = base() | {"kind": "undo"}
    assert errors_of(doc) == ["kind: must be one of promotion, rollback (a rollback policy decides returns to the "
                              "stage's previous holder)"]
