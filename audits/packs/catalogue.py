"""Control catalogues (``catalogue/*.json``): the controls of each framework and their checks.

The catalogues are data so that a compliance officer can read (and review changes to) exactly
what each control is answered by; this module loads and validates them and decides which
frameworks apply to a model from its data categories.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from audits.packs.checks import CHECKS

_DIR = Path(__file__).resolve().parent / "catalogue"
FRAMEWORKS = ("hipaa", "gdpr", "soc2")


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    requirement: str
    checks: tuple[str, ...]


@dataclass(frozen=True)
class Catalogue:
    framework: str
    name: str
    citation: str
    applies_to_categories: frozenset[str]
    applies_to_all: bool
    minimum_retention_days: int
    controls: tuple[Control, ...]

    def applies_to(self, data_categories: list[str] | tuple[str, ...]) -> bool:
        """Does this framework govern a model with these data categories?"""
        return self.applies_to_all or bool(self.applies_to_categories & set(data_categories))

    def scope_rule(self) -> str:
        """The applicability rule in words, for the report and for error messages."""
        if self.applies_to_all:
            return f"{self.name} applies to every model"
        cats = " or ".join(f"'{c}'" for c in sorted(self.applies_to_categories))
        return f"{self.name} applies to models whose data categories include {cats}"


class CatalogueError(ValueError):
    """A catalogue file is malformed (a bug in the shipped data, caught by the tests)."""


def _load(framework: str) -> Catalogue:
    path = _DIR / f"{framework}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("framework") != framework:
        raise CatalogueError(f"{path.name}: framework must be {framework!r}")
    controls = []
    seen: set[str] = set()
    for i, c in enumerate(data.get("controls") or []):
        where = f"{path.name}: controls[{i}]"
        if not all(isinstance(c.get(k), str) and c[k] for k in ("id", "title", "requirement")):
            raise CatalogueError(f"{where}: id, title and requirement are required strings")
        if c["id"] in seen:
            raise CatalogueError(f"{where}: duplicate control id {c['id']!r}")
        seen.add(c["id"])
        checks = c.get("checks") or []
        unknown = [name for name in checks if name not in CHECKS]
        if not checks or unknown:
            raise CatalogueError(f"{where}: checks must name known checks; unknown: {unknown}")
        controls.append(Control(c["id"], c["title"], c["requirement"], tuple(checks)))
    if not controls:
        raise CatalogueError(f"{path.name}: no controls")
    applies = data.get("applies_to") or {}
    return Catalogue(framework=framework, name=data["name"], citation=data["citation"],
                     applies_to_categories=frozenset(applies.get("data_categories") or []),
                     applies_to_all=bool(applies.get("all_models")),
                     minimum_retention_days=int(data.get("minimum_retention_days") or 0),
                     controls=tuple(controls))


@cache
def catalogue(framework: str) -> Catalogue:
    """The catalogue of one framework (``hipaa``, ``gdpr``, ``soc2``)."""
    if framework not in FRAMEWORKS:
        raise KeyError(framework)
    return _load(framework)


def frameworks_for(data_categories: list[str] | tuple[str, ...]) -> list[str]:
    """Which frameworks apply to a model with these data categories."""
    return [f for f in FRAMEWORKS if catalogue(f).applies_to(data_categories)]
