"""Shared serializer behaviour: strict JSON input.

Unknown or read-only keys are errors, not silently ignored, and values must already have the
right JSON type: DRF would otherwise turn ``5`` into ``"5"`` for a text field or ``"5"`` into ``5``
for a number, hiding a client's bug.
"""
from __future__ import annotations

import copy
from typing import Any, ClassVar

from rest_framework import serializers


def _type_error(field: serializers.Field, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(field, serializers.CharField) and not isinstance(value, str):
        return "must be a JSON string"
    if isinstance(field, serializers.IntegerField) and (isinstance(value, bool) or not isinstance(value, int)):
        return "must be a JSON integer"
    if isinstance(field, serializers.ListField):
        if not isinstance(value, list):
            return "must be a JSON array"
        for item in value:
            problem = _type_error(field.child, item)
            if problem:
                return f"items {problem.replace('must be', 'must each be', 1)}"
    return None


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not accept and values of the wrong JSON type.

    Its fields are built once per class, not once per request. DRF's ``get_fields`` deep-copies
    every declared field for each instance, which rebuilds each field's validators and error
    messages: 0.28 ms for ``VersionIn``, most of its validation, on every registration. Here the
    deep copy is made once (the prototype) and each instance gets shallow copies of it, which it
    binds to itself as DRF does. The copies share only what validation never changes (validators,
    error messages, a list field's child). Nested serializers would share more, so a class that
    declares one is refused at its first use.
    """

    _prototype: ClassVar[dict[str, serializers.Field] | None] = None

    def get_fields(self) -> dict[str, serializers.Field]:
        cls = type(self)
        prototype = cls.__dict__.get("_prototype")
        if prototype is None:
            prototype = copy.deepcopy(self._declared_fields)
            nested = [name for name, field in prototype.items() if isinstance(field, serializers.BaseSerializer)]
            if nested:
                raise TypeError(f"{cls.__name__} declares nested serializers ({nested}); StrictSerializer shares "
                                "its fields between instances and supports plain fields only.")
            cls._prototype = prototype
        return {name: copy.copy(field) for name, field in prototype.items()}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Send a JSON object."]})
        writable = {name: field for name, field in self.fields.items() if not field.read_only}
        errors = {key: [f"'{key}' is not accepted here (unknown or read-only); accepted: {sorted(writable)}."]
                  for key in sorted(set(data) - set(writable))}
        for key, field in writable.items():
            if key in data:
                problem = _type_error(field, data[key])
                if problem:
                    errors[key] = [f"'{key}' {problem}."]
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


_TIME = serializers.DateTimeField()


def api_time(value: Any) -> str | None:
    """A time as every serializer renders it (DRF's ``DateTimeField``), for answers built by hand."""
    return _TIME.to_representation(value) if value is not None else None
