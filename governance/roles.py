"""Roles and what each may do: the single source of the permission matrix.

Roles are Django groups (created by a migration from this table). A role says which *kinds* of
action a person may take; which *objects* they may take them on is decided by team membership
(django-guardian object permissions), except for roles marked ``sees_all``.
``docs/permissions.md`` renders this table and ``tests/governance/test_permission_matrix.py``
holds the two to each other.
"""
from __future__ import annotations

from dataclasses import dataclass

VIEWER = "viewer"
DATA_SCIENTIST = "data_scientist"
ML_ENGINEER = "ml_engineer"
PIPELINE = "pipeline"
APPROVER = "approver"
COMPLIANCE_OFFICER = "compliance_officer"
AUDITOR = "auditor"
ADMINISTRATOR = "administrator"

# Capabilities, each a custom permission "governance.<codename>" on the Role model.
CAPABILITIES: dict[str, str] = {
    "view_models": "See models, versions, stages and datasets of one's teams",
    "view_all_models": "See every team's models, versions, stages and datasets",
    "create_model": "Register a new model for one's team",
    "change_model": "Edit a model's description, risk tier, intended use, data categories, tags",
    "archive_model": "Archive (or delete, when it has no versions) a model",
    "register_version": "Register a model version (artifact digest, lineage)",
    "change_version": "Edit a version's description and tags",
    "register_dataset": "Register a dataset (digest, schema, data categories)",
    "view_audit_log": "Read the whole audit log, export it, verify it",
    "view_own_audit_events": "Read audit events about objects one may see",
    "manage_teams": "Create teams, add and remove members",
    "manage_roles": "Grant and withdraw roles",
    "manage_tokens": "List and revoke other people's API tokens",
    "use_portal": "Sign in to the admin portal",
    "request_promotion": "Ask for a version to be promoted to a stage (decided by gates and approvers)",
    "approve_promotion": "Approve or reject a promotion request (never one's own, never one's own version)",
    "manage_policies": "Publish promotion policy versions",
    "grant_waiver": "Waive one failing gate for one version, with a justification and an expiry",
}


@dataclass(frozen=True)
class Role:
    """A role: its group name, a human label, whether it sees all teams, and its capabilities."""

    name: str
    label: str
    sees_all: bool
    capabilities: frozenset[str]


_read = {"view_models", "view_own_audit_events"}
ROLES: dict[str, Role] = {
    r.name: r
    for r in [
        Role(VIEWER, "Viewer", False, frozenset(_read)),
        Role(DATA_SCIENTIST, "Data scientist", False,
             frozenset(_read | {"register_version", "change_version", "register_dataset"})),
        Role(ML_ENGINEER, "ML engineer", False,
             frozenset(_read | {"create_model", "change_model", "archive_model", "register_version",
                                "change_version", "register_dataset", "request_promotion"})),
        Role(PIPELINE, "Pipeline (service account)", False,
             frozenset(_read | {"create_model", "register_version", "register_dataset", "request_promotion"})),
        Role(APPROVER, "Approver (model risk validator)", True,
             frozenset(_read | {"view_all_models", "use_portal", "approve_promotion"})),
        Role(COMPLIANCE_OFFICER, "Compliance officer", True,
             frozenset(_read | {"view_all_models", "view_audit_log", "use_portal", "approve_promotion",
                                "manage_policies", "grant_waiver"})),
        Role(AUDITOR, "Auditor (read-only)", True,
             frozenset(_read | {"view_all_models", "view_audit_log", "use_portal"})),
        Role(ADMINISTRATOR, "Administrator", True,
             frozenset(CAPABILITIES)),
    ]
}


def capability_perm(codename: str) -> str:
    """The full Django permission string for a capability."""
    return f"governance.{codename}"
