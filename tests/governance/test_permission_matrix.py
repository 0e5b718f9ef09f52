"""docs/permissions.md, governance.roles and the groups in the database say the same thing."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from governance.roles import CAPABILITIES, ROLES

DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"


def _doc_matrix() -> tuple[list[str], dict[str, set[str]], set[str]]:
    text = DOC.read_text()
    block = text.split("<!-- permission-matrix:start")[1].split("<!-- permission-matrix:end -->")[0]
    rows = [line for line in block.splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    roles = header[2:]
    grants: dict[str, set[str]] = {r: set() for r in roles}
    sees_all: set[str] = set()
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = cells[0].strip("`")
        for role, cell in zip(roles, cells[2:]):
            if cell == "yes":
                (sees_all.add(role) if name == "sees every team's models" else grants[role].add(name))
    return roles, grants, sees_all


def test_doc_lists_every_role_and_capability() -> None:
    roles, grants, _ = _doc_matrix()
    assert roles == list(ROLES)
    listed = {m for m in re.findall(r"^\| `(\w+)`", DOC.read_text(), re.M)}
    assert listed == set(CAPABILITIES)


def test_doc_matches_the_code() -> None:
    _, grants, sees_all = _doc_matrix()
    for name, role in ROLES.items():
        assert grants[name] == set(role.capabilities), name
        assert (name in sees_all) == role.sees_all, name


@pytest.mark.django_db
def test_groups_in_the_database_match_the_code() -> None:
    for name, role in ROLES.items():
        group = Group.objects.get(name=name)
        perms = set(group.permissions.filter(content_type__app_label="governance")
                    .values_list("codename", flat=True))
        assert perms == set(role.capabilities), name
        assert group.role.label == role.label
