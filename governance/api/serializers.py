"""Shared serializer behaviour: unknown or read-only fields in input are errors, not ignored."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not accept, so a typo or an attempt to set a protected field is seen."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Send a JSON object."]})
        writable = {name for name, field in self.fields.items() if not field.read_only}
        unknown = sorted(set(data) - writable)
        if unknown:
            raise serializers.ValidationError(
                {key: [f"'{key}' is not accepted here (unknown or read-only); accepted: {sorted(writable)}."]
                 for key in unknown})
        return super().to_internal_value(data)
