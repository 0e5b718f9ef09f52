"""Promotion policies as code: the document, its validation, canonical export and content digest.

A policy says which gates a model version must pass before it may enter a stage, and for which
models. It is a pure core (no Django, no ORM) so the same code validates a policy in the API, in
a management command, in CI on a pull request that edits a policy file, and in tests.

Why the design is strict:

* A policy is evidence in an audit: "version 7 went to production under policy P, digest D".
  The digest must therefore not depend on how the document was written (YAML or JSON, key order,
  ``1`` or ``1.0``, role order), only on what it says. Every document is parsed into one
  normalised form (defaults filled in, sets sorted, numbers typed) and the digest is SHA-256 over
  its RFC 8785 canonical JSON; the canonical YAML/JSON exports re-import to the same digest.
* A typo must not weaken a gate silently. Unknown keys, unknown gate types, unknown metrics, a
  comparison in the wrong direction (``demographic_parity_difference >= 0.1``) and thresholds out
  of range are errors, all reported at once with their location (``gates[2].threshold: ...``).
* Policy text comes from people over an API. YAML is loaded with a ``SafeLoader`` subclass (no
  Python objects), documents are size-limited, and anchors/aliases are refused outright: a policy
  never needs them, and refusing them removes "billion laughs" expansion at the root. YAML's
  silent "last duplicate key wins" is turned into an error too.
"""
from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

import yaml

from audits.core.canonical import CanonicalError, canonical_bytes, parse_strict
from governance.errors import ValidationFailed
from governance.roles import PIPELINE, ROLES

__all__ = [
    "APPROVER_ROLES", "BIAS_METRICS", "FORMAT_VERSION", "GATE_TYPES", "MAX_DOCUMENT_BYTES", "MAX_GATES", "OPS",
    "REPORT_GATE_TYPES", "RISK_TIERS", "STAGES", "VALIDATION_METRICS", "ApprovalsGate", "BiasMetricGate",
    "DriftGate", "EvidenceBindingGate", "EvidenceFreshnessGate", "GateSpec", "MetricRule", "Op", "Policy",
    "PolicyError", "ValidationMetricGate", "compare", "dump_policy", "format_number", "parse_policy",
    "policy_from_data",
]

FORMAT_VERSION = 1
"""The only document format this code reads; a future incompatible format gets a new number."""

MAX_DOCUMENT_BYTES = 64 * 1024
MAX_YAML_NODES = 10_000
MAX_DEPTH = 16
"""PyYAML composes recursively, so deep nesting would end in RecursionError; refuse it first."""
MAX_GATES = 50
MAX_DESCRIPTION = 2000
MAX_AGE_DAYS = 3650
MAX_APPROVALS = 10

# Mirrors of registry.models.RiskTier / Stage (promotable stages only); tests hold them equal.
RISK_TIERS: tuple[str, ...] = ("low", "medium", "high", "critical")
STAGES: tuple[str, ...] = ("staging", "production")
KINDS: tuple[str, ...] = ("promotion", "rollback")  # "promotion" is the default, left out of the canonical form

_SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # registry.models.NAME_RE

Op: TypeAlias = Literal[">=", ">", "<=", "<"]
OPS: tuple[str, ...] = (">=", ">", "<=", "<")


def compare(value: float, op: str, threshold: float) -> bool:
    """``value op threshold``; the single place an operator string becomes a comparison."""
    if op == ">=":
        return value >= threshold
    if op == ">":
        return value > threshold
    if op == "<=":
        return value <= threshold
    if op == "<":
        return value < threshold
    raise ValueError(f"unknown operator {op!r}")


def format_number(value: float | int) -> str:
    """Shortest faithful text for a number (``1.0`` -> ``1``), used in gate keys and reasons."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class MetricRule:
    """What a threshold on a metric may look like: the better direction and the metric's range."""

    higher_is_better: bool
    low: float | None
    high: float | None

    @property
    def ops(self) -> tuple[str, str]:
        return (">=", ">") if self.higher_is_better else ("<=", "<")

    def range_text(self) -> str:
        if self.low is not None and self.high is not None:
            return f"between {format_number(self.low)} and {format_number(self.high)}"
        if self.low is not None:
            return f">= {format_number(self.low)}"
        return f"<= {format_number(self.high)}" if self.high is not None else "finite"

    def in_range(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


_UNIT = MetricRule(True, 0.0, 1.0)
_LOSS = MetricRule(False, 0.0, None)
# Keys of a validation report's "metrics" (docs/detectors.md): classification and regression.
VALIDATION_METRICS: dict[str, MetricRule] = {
    "accuracy": _UNIT, "precision": _UNIT, "recall": _UNIT, "f1": _UNIT, "roc_auc": _UNIT,
    "log_loss": _LOSS, "rmse": _LOSS, "mae": _LOSS, "r2": MetricRule(True, None, 1.0),
}
# Top-level keys of a bias report: differences are disparities (lower is fairer), ratios parities.
BIAS_METRICS: dict[str, MetricRule] = {
    "demographic_parity_difference": MetricRule(False, 0.0, 1.0),
    "equalized_odds_difference": MetricRule(False, 0.0, 1.0),
    "demographic_parity_ratio": MetricRule(True, 0.0, 1.0),
    "equalized_odds_ratio": MetricRule(True, 0.0, 1.0),
}

APPROVER_ROLES: tuple[str, ...] = tuple(sorted(name for name in ROLES if name != PIPELINE))
"""Roles an approvals gate may name: every human role; a service account cannot approve."""


class PolicyError(ValidationFailed):
    """The policy document is invalid; ``errors`` lists every problem, each prefixed by its location.

    A ``ValidationFailed`` so the API's exception handler turns it into a 400 with the list in
    ``details`` without knowing about policies.
    """

    default_code = "invalid_policy"

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        summary = "; ".join(self.errors[:3]) + (f" (and {len(self.errors) - 3} more)" if len(self.errors) > 3 else "")
        super().__init__(f"Invalid policy: {summary}", details={"errors": self.errors})


# --- gate specifications -------------------------------------------------------------------------

@dataclass(frozen=True)
class ValidationMetricGate:
    """A metric of the newest succeeded validation report must satisfy ``metric op threshold``."""

    type: ClassVar[str] = "validation_metric"
    metric: str
    op: Op
    threshold: float

    @property
    def key(self) -> str:
        return f"{self.type}:{self.metric}{self.op}{format_number(self.threshold)}"

    def to_data(self) -> dict[str, Any]:
        return {"type": self.type, "metric": self.metric, "op": self.op, "threshold": self.threshold}


@dataclass(frozen=True)
class BiasMetricGate:
    """A fairness metric of the newest succeeded bias report on exactly ``sensitive_feature``."""

    type: ClassVar[str] = "bias_metric"
    metric: str
    sensitive_feature: str
    op: Op
    threshold: float

    @property
    def key(self) -> str:
        return f"{self.type}:{self.metric}[{self.sensitive_feature}]{self.op}{format_number(self.threshold)}"

    def to_data(self) -> dict[str, Any]:
        return {"type": self.type, "metric": self.metric, "sensitive_feature": self.sensitive_feature,
                "op": self.op, "threshold": self.threshold}


@dataclass(frozen=True)
class DriftGate:
    """Limits on the newest succeeded drift report; ``p_val`` re-judges features at that level."""

    type: ClassVar[str] = "drift"
    max_share_drifted: float | None
    require_no_drift: bool
    p_val: float | None

    @property
    def key(self) -> str:
        parts = []
        if self.max_share_drifted is not None:
            parts.append(f"share_drifted<={format_number(self.max_share_drifted)}")
        if self.require_no_drift:
            parts.append("no_drift")
        if self.p_val is not None:
            parts.append(f"p_val={format_number(self.p_val)}")
        return f"{self.type}:{','.join(parts)}"

    def to_data(self) -> dict[str, Any]:
        return {"type": self.type, "max_share_drifted": self.max_share_drifted,
                "require_no_drift": self.require_no_drift, "p_val": self.p_val}


@dataclass(frozen=True)
class EvidenceFreshnessGate:
    """Every report the other gates use finished at most ``max_age_days`` before the evaluation."""

    type: ClassVar[str] = "evidence_freshness"
    max_age_days: int

    @property
    def key(self) -> str:
        return f"{self.type}:max_age_days={self.max_age_days}"

    def to_data(self) -> dict[str, Any]:
        return {"type": self.type, "max_age_days": self.max_age_days}


@dataclass(frozen=True)
class EvidenceBindingGate:
    """Every report used is bound to this artifact, to registered datasets, and to its result digest."""

    type: ClassVar[str] = "evidence_binding"

    @property
    def key(self) -> str:
        return self.type

    def to_data(self) -> dict[str, Any]:
        return {"type": self.type}


@dataclass(frozen=True)
class ApprovalsGate:
    """``count`` distinct eligible people holding one of ``roles`` approved (separation of duties built in)."""

    type: ClassVar[str] = "approvals"
    count: int
    roles: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.type}:{self.count}[{','.join(self.roles)}]"

    def to_data(self) -> dict[str, Any]:
        return {"type": self.type, "count": self.count, "roles": list(self.roles)}


GateSpec: TypeAlias = (ValidationMetricGate | BiasMetricGate | DriftGate | EvidenceFreshnessGate
                       | EvidenceBindingGate | ApprovalsGate)
GATE_TYPES: tuple[str, ...] = tuple(sorted(g.type for g in (
    ValidationMetricGate, BiasMetricGate, DriftGate, EvidenceFreshnessGate, EvidenceBindingGate, ApprovalsGate)))
REPORT_GATE_TYPES: tuple[str, ...] = ("bias_metric", "drift", "validation_metric")
"""Gates that read a report; freshness and binding judge the reports these use."""


@dataclass(frozen=True)
class Policy:
    """A validated, normalised policy. Build it with ``parse_policy`` / ``policy_from_data``."""

    name: str
    description: str
    target_stage: str
    risk_tiers: tuple[str, ...]
    models: tuple[str, ...]
    gates: tuple[GateSpec, ...]
    format_version: int = FORMAT_VERSION
    kind: str = "promotion"

    def applies_to(self, *, model_name: str, risk_tier: str, stage: str, kind: str = "promotion") -> bool:
        """Whether a request of ``kind`` for a model (by name and risk tier) to ``stage`` is gated by this policy.

        The scope is a union: a model is in scope if its tier is listed *or* it is named. A
        ``rollback`` policy decides only rollbacks (a return to the stage's previous holder).
        """
        return (kind == self.kind and stage == self.target_stage
                and (risk_tier in self.risk_tiers or model_name in self.models))

    def to_data(self) -> dict[str, Any]:
        """The canonical document: every key present, defaults filled in, sets sorted."""
        return {
            "format_version": self.format_version,
            "name": self.name,
            "description": self.description,
            "target_stage": self.target_stage,
            "applies_to": {"risk_tiers": list(self.risk_tiers), "models": list(self.models)},
            "gates": [gate.to_data() for gate in self.gates],
        } | ({"kind": self.kind} if self.kind != "promotion" else {})

    def digest(self) -> str:
        """SHA-256 (hex) of the RFC 8785 canonical JSON of ``to_data()``: what the policy says, not how."""
        return hashlib.sha256(canonical_bytes(self.to_data())).hexdigest()


# --- reading text --------------------------------------------------------------------------------

class _PolicyLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate mapping keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"


def _prescan_yaml(text: str) -> None:
    """Refuse anchors/aliases, too many nodes and deep nesting, from the event stream (iterative)."""
    nodes = depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise PolicyError([f"{_where(event.start_mark)}: YAML anchors and aliases (&name, *name) are not "
                               "allowed in a policy; write every value out in full"])
        if isinstance(event, (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            nodes += 1
            if nodes > MAX_YAML_NODES:
                raise PolicyError([f"policy document has more than {MAX_YAML_NODES} YAML nodes"])
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise PolicyError([f"{_where(event.start_mark)}: nested deeper than {MAX_DEPTH} levels"])
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _load_yaml(text: str) -> Any:
    try:
        _prescan_yaml(text)
        return yaml.load(text, Loader=_PolicyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem += f" ({exc.context})"
        raise PolicyError([f"YAML error at {_where(exc.problem_mark)}: {problem}"]) from exc
    except yaml.YAMLError as exc:
        raise PolicyError([f"YAML error: {exc}"]) from exc


def _load_json(text: str) -> Any:
    try:
        return parse_strict(text)
    except CanonicalError as exc:
        message = str(exc).removeprefix("not JSON: ")
        raise PolicyError([f"JSON error: {message}"]) from exc


def parse_policy(text: str | bytes, *, fmt: Literal["yaml", "json"] = "yaml") -> Policy:
    """Parse and validate a policy document; raises ``PolicyError`` listing every problem.

    ``fmt`` is explicit rather than sniffed: JSON is almost a subset of YAML, and a JSON policy
    should be held to JSON's rules (no duplicate keys, no NaN), not to YAML's looser ones.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise PolicyError([f"policy document is {len(raw)} bytes; the limit is {MAX_DOCUMENT_BYTES}"])
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError([f"policy document is not UTF-8 text (byte {exc.start})"]) from exc
    if fmt == "yaml":
        data = _load_yaml(decoded)
    elif fmt == "json":
        data = _load_json(decoded)
    else:
        raise ValueError(f"fmt must be 'yaml' or 'json', not {fmt!r}")
    return policy_from_data(data)


def dump_policy(policy: Policy, *, fmt: Literal["yaml", "json"] = "yaml") -> str:
    """The canonical text of a policy: RFC 8785 JSON, or block-style YAML with sorted keys.

    Both re-import to the same ``Policy`` and therefore the same digest.
    """
    data = policy.to_data()
    if fmt == "json":
        return canonical_bytes(data).decode("utf-8")
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True, width=1000)
    raise ValueError(f"fmt must be 'yaml' or 'json', not {fmt!r}")


# --- validation ----------------------------------------------------------------------------------

def _at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    """How a wrong value is named in an error: its YAML/JSON kind, with the value when short."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {format_number(value)}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


class _Checker:
    """Collects located errors so one pass reports every problem in the document."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def mapping(self, value: Any, path: str, *, required: tuple[str, ...], optional: tuple[str, ...],
                what: str) -> dict[str, Any] | None:
        """The mapping with only known string keys, or None (errors recorded) if it is not one."""
        if not isinstance(value, dict):
            self.error(path or "policy", f"must be a mapping ({what}), got {_describe(value)}")
            return None
        allowed = required + optional
        good: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.error(path or "policy", f"keys must be text, got {_describe(key)}")
            elif key not in allowed:
                self.error(_at(path, key), f"unknown key; expected one of {', '.join(sorted(allowed))}")
            else:
                good[key] = item
        for key in required:
            if key not in value:
                self.error(_at(path, key), "required")
        return good

    def number(self, value: Any, path: str, *, low: float | None = None, high: float | None = None,
               open_interval: bool = False, range_text: str = "") -> float | None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok:
            number = float(value)
            if open_interval:
                ok = (low is None or number > low) and (high is None or number < high)
            else:
                ok = (low is None or number >= low) and (high is None or number <= high)
        if ok:
            return number
        message = f"must be a number {range_text}".rstrip()
        if isinstance(value, str) and _looks_numeric(value):
            message += f" (got the text {value!r}; write a plain decimal such as 0.001 without quotes)"
        self.error(path, message)
        return None

    def integer(self, value: Any, path: str, low: int, high: int) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        self.error(path, f"must be an integer from {low} to {high}")
        return None

    def text(self, value: Any, path: str, message: str, pattern: re.Pattern[str] | None = None,
             max_len: int | None = None) -> str | None:
        if isinstance(value, str) and (pattern is None or pattern.match(value)) and (
                max_len is None or len(value) <= max_len):
            return value
        self.error(path, message)
        return None

    def choice_list(self, value: Any, path: str, *, what: str, allowed: tuple[str, ...] | None = None,
                    pattern: re.Pattern[str] | None = None, pattern_text: str = "") -> list[str] | None:
        """A list of distinct strings, each in ``allowed`` or matching ``pattern``."""
        if not isinstance(value, list):
            self.error(path, f"must be a list of {what}, got {_describe(value)}")
            return None
        items: list[str] = []
        for i, item in enumerate(value):
            where = _at(path, i)
            if not isinstance(item, str):
                self.error(where, f"must be text, got {_describe(item)}")
            elif allowed is not None and item not in allowed:
                self.error(where, f"unknown {what[:-1] if what.endswith('s') else what} {item!r}; "
                                  f"expected one of {', '.join(allowed)}")
            elif pattern is not None and not pattern.match(item):
                self.error(where, f"{item!r} {pattern_text}")
            elif item in items:
                self.error(where, f"{item!r} is listed twice")
            else:
                items.append(item)
        return items


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_op(c: _Checker, value: Any, path: str, metric: str | None, rule: MetricRule | None) -> Op | None:
    if value not in OPS or not isinstance(value, str):
        c.error(path, "must be one of '>=', '>', '<=', '<'")
        return None
    if rule is not None and value not in rule.ops:
        better = "higher" if rule.higher_is_better else "lower"
        c.error(path, f"{metric} is better when {better}; use '{rule.ops[0]}' or '{rule.ops[1]}'")
        return None
    return value  # type: ignore[return-value]


def _metric_gate(c: _Checker, gate: dict[str, Any], path: str, catalogue: dict[str, MetricRule],
                 kind: str) -> tuple[str, Op, float] | None:
    metric = gate.get("metric")
    rule = catalogue.get(metric) if isinstance(metric, str) else None
    if "metric" in gate and rule is None:
        named = repr(metric) if isinstance(metric, str) else _describe(metric)
        c.error(_at(path, "metric"), f"unknown {kind} metric {named}; expected one of {', '.join(sorted(catalogue))}")
    op = _check_op(c, gate["op"], _at(path, "op"), metric, rule) if "op" in gate else None
    threshold = None
    if "threshold" in gate:
        threshold = c.number(gate["threshold"], _at(path, "threshold"), low=rule.low if rule else None,
                             high=rule.high if rule else None, range_text=rule.range_text() if rule else "")
    if rule is None or op is None or threshold is None:
        return None
    return metric, op, threshold  # type: ignore[return-value]


def _gate(c: _Checker, value: Any, path: str) -> GateSpec | None:
    """One gate, or None with its errors recorded."""
    if not isinstance(value, dict):
        c.error(path, f"must be a mapping with a 'type' key, got {_describe(value)}")
        return None
    gate_type = value.get("type")
    if "type" not in value:
        c.error(_at(path, "type"), "required")
        return None
    if gate_type not in GATE_TYPES or not isinstance(gate_type, str):
        c.error(_at(path, "type"), f"unknown gate type {gate_type!r}; expected one of {', '.join(GATE_TYPES)}")
        return None
    errors_before = len(c.errors)
    if gate_type == "validation_metric":
        gate = c.mapping(value, path, required=("type", "metric", "op", "threshold"), optional=(), what="a gate")
        parsed = _metric_gate(c, gate or {}, path, VALIDATION_METRICS, "validation")
        result: GateSpec | None = ValidationMetricGate(*parsed) if parsed else None
    elif gate_type == "bias_metric":
        gate = c.mapping(value, path, required=("type", "metric", "sensitive_feature", "op", "threshold"),
                         optional=(), what="a gate") or {}
        parsed = _metric_gate(c, gate, path, BIAS_METRICS, "bias")
        feature = None
        if "sensitive_feature" in gate:
            feature = c.text(gate["sensitive_feature"], _at(path, "sensitive_feature"),
                             "must be the name of one column (non-empty text, at most 256 characters)",
                             re.compile(r"^.+$", re.S), 256)
        result = BiasMetricGate(parsed[0], feature, parsed[1], parsed[2]) if parsed and feature else None
    elif gate_type == "drift":
        gate = c.mapping(value, path, required=("type",), optional=("max_share_drifted", "require_no_drift", "p_val"),
                         what="a gate") or {}
        share = p_val = None
        no_drift = False
        if gate.get("max_share_drifted") is not None:
            share = c.number(gate["max_share_drifted"], _at(path, "max_share_drifted"), low=0, high=1,
                             range_text="between 0 and 1")
        if "require_no_drift" in gate:
            if isinstance(gate["require_no_drift"], bool):
                no_drift = gate["require_no_drift"]
            else:
                c.error(_at(path, "require_no_drift"), "must be true or false")
        if gate.get("p_val") is not None:
            p_val = c.number(gate["p_val"], _at(path, "p_val"), low=0, high=1, open_interval=True,
                             range_text="greater than 0 and less than 1")
        if len(c.errors) == errors_before and share is None and not no_drift:
            c.error(path, "a drift gate needs max_share_drifted and/or require_no_drift: true")
        result = DriftGate(share, no_drift, p_val)
    elif gate_type == "evidence_freshness":
        gate = c.mapping(value, path, required=("type", "max_age_days"), optional=(), what="a gate") or {}
        days = c.integer(gate["max_age_days"], _at(path, "max_age_days"), 1, MAX_AGE_DAYS) \
            if "max_age_days" in gate else None
        result = EvidenceFreshnessGate(days) if days is not None else None
    elif gate_type == "evidence_binding":
        c.mapping(value, path, required=("type",), optional=(), what="a gate")
        result = EvidenceBindingGate()
    else:  # approvals
        gate = c.mapping(value, path, required=("type", "count", "roles"), optional=(), what="a gate") or {}
        count = c.integer(gate["count"], _at(path, "count"), 1, MAX_APPROVALS) if "count" in gate else None
        roles = None
        if "roles" in gate:
            roles = _approver_roles(c, gate["roles"], _at(path, "roles"))
        result = ApprovalsGate(count, tuple(sorted(roles))) if count is not None and roles else None
    return result if len(c.errors) == errors_before else None


def _approver_roles(c: _Checker, value: Any, path: str) -> list[str] | None:
    errors_before = len(c.errors)
    if isinstance(value, list):
        for i, role in enumerate(value):
            if role == PIPELINE:
                c.error(_at(path, i), f"'{PIPELINE}' is a service account and cannot approve")
        value = [role for role in value if role != PIPELINE]
    roles = c.choice_list(value, path, what="roles", allowed=APPROVER_ROLES)
    if roles is not None and not roles and len(c.errors) == errors_before:
        c.error(path, "must name at least one role")
    return roles


def _uniqueness(gate: GateSpec) -> tuple[str, str]:
    """What may appear once per policy, and how to say so: one gate per metric, one of each other type."""
    if isinstance(gate, ValidationMetricGate):
        return f"{gate.type}:{gate.metric}", f"one validation_metric gate per metric ({gate.metric})"
    if isinstance(gate, BiasMetricGate):
        return (f"{gate.type}:{gate.metric}:{gate.sensitive_feature}",
                f"one bias_metric gate per metric and sensitive feature ({gate.metric}, {gate.sensitive_feature})")
    return gate.type, f"one {gate.type} gate per policy"


def policy_from_data(data: Any) -> Policy:
    """Validate an already-parsed document (a dict from YAML or JSON) into a normalised ``Policy``."""
    c = _Checker()
    doc = c.mapping(data, "", required=("name", "target_stage", "applies_to", "gates"),
                    optional=("description", "format_version", "kind"),
                    what="with keys name, target_stage, applies_to, gates")
    if doc is None:
        raise PolicyError(c.errors)
    if "format_version" in doc and (doc["format_version"] != FORMAT_VERSION or isinstance(doc["format_version"], bool)):
        c.error("format_version", f"must be {FORMAT_VERSION} (the only format this server reads)")
    name = c.text(doc["name"], "name", "must be a slug: 1-64 lowercase letters, digits and hyphens, starting and "
                                       "ending with a letter or digit", _SLUG_RE) if "name" in doc else None
    description = c.text(doc.get("description", ""), "description",
                         f"must be text of at most {MAX_DESCRIPTION} characters", max_len=MAX_DESCRIPTION)
    kind = doc.get("kind", "promotion")
    if kind not in KINDS:
        c.error("kind", f"must be one of {', '.join(KINDS)} (a rollback policy decides returns to the stage's "
                        "previous holder)")
    stage = None
    if "target_stage" in doc:
        stage = doc["target_stage"] if doc["target_stage"] in STAGES else None
        if stage is None:
            c.error("target_stage", f"must be one of {', '.join(STAGES)}")

    risk_tiers: list[str] = []
    models: list[str] = []
    if "applies_to" in doc:
        scope = c.mapping(doc["applies_to"], "applies_to", required=(), optional=("models", "risk_tiers"),
                          what="with risk_tiers and/or models")
        if scope is not None:
            tiers = c.choice_list(scope.get("risk_tiers", []), "applies_to.risk_tiers", what="risk tiers",
                                  allowed=RISK_TIERS)
            names = c.choice_list(scope.get("models", []), "applies_to.models", what="model names",
                                  pattern=_MODEL_NAME_RE,
                                  pattern_text="is not a model name (1-128 letters, digits, '.', '_' or '-')")
            risk_tiers = sorted(tiers or [], key=RISK_TIERS.index)
            models = sorted(names or [])
            if tiers is not None and names is not None and not tiers and not names \
                    and not any(e.startswith("applies_to") for e in c.errors):
                c.error("applies_to", "must name at least one risk tier or model")

    gates: list[GateSpec] = []
    if "gates" in doc:
        raw_gates = doc["gates"]
        if not isinstance(raw_gates, list) or not raw_gates:
            c.error("gates", f"must be a non-empty list of gates, got {_describe(raw_gates)}"
                    if not isinstance(raw_gates, list) else "must be a non-empty list of gates")
        elif len(raw_gates) > MAX_GATES:
            c.error("gates", f"at most {MAX_GATES} gates, got {len(raw_gates)}")
        else:
            first_seen: dict[str, int] = {}
            for i, raw in enumerate(raw_gates):
                gate = _gate(c, raw, f"gates[{i}]")
                if gate is None:
                    continue
                unique, rule = _uniqueness(gate)
                if unique in first_seen:
                    c.error(f"gates[{i}]", f"duplicates gates[{first_seen[unique]}]: {rule}")
                    continue
                first_seen[unique] = i
                gates.append(gate)
            if gates and len(gates) == len(raw_gates):
                needs_reports = [i for i, g in enumerate(gates) if g.type in ("evidence_freshness", "evidence_binding")]
                if needs_reports and not any(g.type in REPORT_GATE_TYPES for g in gates):
                    for i in needs_reports:
                        c.error(f"gates[{i}]", f"{gates[i].type} has no report to judge; add a validation_metric, "
                                               "bias_metric or drift gate")
    if c.errors:
        raise PolicyError(c.errors)
    assert name is not None and description is not None and stage is not None
    return Policy(name=name, description=description, target_stage=stage, risk_tiers=tuple(risk_tiers),
                  models=tuple(models), gates=tuple(gates), kind=kind)
