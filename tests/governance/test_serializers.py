"""StrictSerializer: strict JSON input, and fields built once per class with DRF's own behaviour."""
from __future__ import annotations

import copy
from typing import Any

import pytest
from rest_framework import serializers

from governance.api.serializers import StrictSerializer
from registry.api import VersionIn

SHA = "a" * 64


# ``VersionIn``'s own declared fields on DRF's plain Serializer: the reference for values and messages.
_Plain = type("_Plain", (serializers.Serializer,), copy.deepcopy(dict(VersionIn._declared_fields)))


# Bodies that pass the strict type check, so both serializers judge the same values.
CASES: list[dict[str, Any]] = [
    {"artifact_uri": "s3://b/x", "artifact_sha256": SHA},
    {"artifact_uri": "s3://b/x", "artifact_sha256": SHA, "artifact_size": 10, "framework": "sklearn",
     "parameters": {"depth": 3}, "metrics": {"auc": 0.9}, "training_datasets": [1, 2], "evaluation_datasets": [3],
     "pipeline_run_id": "", "description": "d", "tags": {"k": "v"}},
    {"artifact_uri": "", "artifact_sha256": "ABC"},
    {"artifact_uri": "x" * 1025, "artifact_sha256": SHA, "artifact_size": -1},
    {"artifact_uri": "s3://b/x", "artifact_sha256": SHA, "training_datasets": [0, 5], "evaluation_datasets": [1] * 101},
    {"artifact_sha256": SHA, "framework": "f" * 65},
    {},
]


@pytest.mark.parametrize("body", CASES)
def test_values_and_messages_are_drfs_own(body: dict[str, Any]) -> None:
    ours, plain = VersionIn(data=body), _Plain(data=body)
    assert ours.is_valid() == plain.is_valid()
    assert ours.errors == plain.errors
    if plain.errors == {}:
        assert ours.validated_data == plain.validated_data


def test_unknown_keys_and_wrong_json_types_are_refused_by_name() -> None:
    data = VersionIn(data={"artifact_uri": 5, "artifact_sha256": SHA, "training_datasets": ["1"], "owner": "x"})
    assert not data.is_valid()
    assert data.errors["owner"][0].startswith("'owner' is not accepted here")
    assert data.errors["artifact_uri"] == ["'artifact_uri' must be a JSON string."]
    assert data.errors["training_datasets"] == ["'training_datasets' items must each be a JSON integer."]
    assert not VersionIn(data=["not", "an", "object"]).is_valid()


def test_fields_are_built_once_per_class_and_each_instance_binds_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    class Once(StrictSerializer):
        name = serializers.CharField(max_length=8)
        size = serializers.IntegerField(min_value=0, required=False)

    deep_copies: list[Any] = []
    real = copy.deepcopy
    monkeypatch.setattr(copy, "deepcopy", lambda obj, *a: deep_copies.append(obj) or real(obj, *a))
    first, second = Once(data={"name": "a"}), Once(data={"name": "b" * 9})
    assert first.is_valid() and not second.is_valid()
    assert len([c for c in deep_copies if c is Once._declared_fields]) == 1  # the prototype, once
    assert first.validated_data == {"name": "a"} and "name" in second.errors  # no state crosses instances
    for name in ("name", "size"):
        a, b, proto = first.fields[name], second.fields[name], Once._prototype[name]  # type: ignore[index]
        assert a is not b and a is not proto and b is not proto
        assert a.parent is first and b.parent is second and a.field_name == name
        assert getattr(proto, "parent", None) is None  # binding never touches the prototype
    assert Once._declared_fields["name"] is not Once._prototype["name"]  # type: ignore[index]


def test_a_subclass_gets_its_own_prototype() -> None:
    class Base(StrictSerializer):
        name = serializers.CharField()

    class Child(Base):
        extra = serializers.IntegerField()

    assert Base(data={"name": "x"}).is_valid()
    child = Child(data={"name": "x", "extra": 1})
    assert child.is_valid() and child.validated_data == {"name": "x", "extra": 1}
    assert set(Base._prototype) == {"name"} and set(Child._prototype) == {"name", "extra"}  # type: ignore[arg-type]


def test_nested_serializers_are_refused_at_first_use() -> None:
    class Inner(serializers.Serializer):
        a = serializers.CharField()

    class Outer(StrictSerializer):
        inner = Inner()

    with pytest.raises(TypeError, match="nested serializers"):
        Outer(data={"inner": {"a": "x"}}).is_valid()
