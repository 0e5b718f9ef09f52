"""Shared fixtures: a realistic cast (two teams, one user per role), API clients per role.

In CI (``CI=true``) a skipped test fails the run: a test that needs a service must find it there.
Tests that need PostgreSQL are marked ``postgres``; the SQLite pass deselects them with ``-m``
rather than skipping them, and the PostgreSQL pass runs them.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import Cast, build_cast

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://... "
                                                    "(CI runs it in its PostgreSQL pass)"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped and session.exitstatus == 0:
        if reporter:
            reporter.write_line(f"CI=true: {skipped} test(s) skipped; in CI every selected test must run.",
                                red=True)
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def _fresh_tree_cache() -> None:
    """Subtree roots are cached per process; each test's database holds a different log."""
    from audits.checkpoints import _CACHE

    _CACHE.clear()


@pytest.fixture(autouse=True)
def _keys_in_tmp(tmp_path_factory: pytest.TempPathFactory, settings: Any) -> None:
    """Each test session signs with its own development key, never the developer's."""
    settings.KEY_DIR = tmp_path_factory.getbasetemp() / "keys"


@pytest.fixture
def cast(db: Any) -> Cast:
    """Teams alpha and beta, one user per role (scoped roles in alpha), models in both teams."""
    return build_cast()


@pytest.fixture
def client_for(cast: Cast) -> Callable[[str], APIClient]:
    """An API client authenticated with a real bearer token of the named cast member."""
    cache: dict[str, APIClient] = {}

    def make(who: str) -> APIClient:
        if who not in cache:
            client = APIClient()
            if who != "anonymous":
                client.credentials(HTTP_AUTHORIZATION=f"Bearer {cast.tokens[who]}")
            cache[who] = client
        return cache[who]

    return make


@pytest.fixture
def sequenced() -> Callable[[], list[Any]]:
    """Sequence the queue (on_commit callbacks do not run inside a test transaction) and return the log."""
    from audits.models import AuditEvent
    from audits.services import audit_sequence

    def run() -> list[Any]:
        audit_sequence(inline=True)
        return list(AuditEvent.objects.order_by("seq"))

    return run
