"""Django reports sign-ins and new connections only as signals; these hand them on at once."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from governance import services


def _ip(request: Any) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


@receiver(user_logged_in, dispatch_uid="govaudit_login_ok")
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    services.login_record_success(user=user, ip=_ip(request))


@receiver(user_login_failed, dispatch_uid="govaudit_login_failed")
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    services.login_record_failure(username=str(credentials.get("username", "")), ip=_ip(request))


@receiver(connection_created, dispatch_uid="govaudit_sqlite_wal")
def _sqlite_wal(sender: Any, connection: Any, **kwargs: Any) -> None:
    """WAL is a property of the SQLite file: set it once, never race other processes to set it."""
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cur:
        cur.execute("PRAGMA journal_mode")
        if cur.fetchone()[0].lower() != "wal":
            cur.execute("PRAGMA journal_mode=WAL")


def sync_roles_after_migrate(sender: Any, apps: Any = None, **kwargs: Any) -> None:
    """Re-create the role groups from governance.roles (idempotent); flush empties them."""
    from django.apps import apps as global_apps

    from governance.migrations._roles import sync_roles

    registry = apps or global_apps
    try:
        registry.get_model("governance", "Role")
    except LookupError:
        return  # migrating backwards past the Role model
    sync_roles(registry, None)
