"""``flush`` wipes the whole database, the audit log included, as an explicit operator act.

Django's own flush would be refused by the append-only triggers; this one lifts them for the
wipe and puts them back. It is used by the test suite between transactional tests. A wiped log is
not an edited log: an auditor's saved checkpoint proves it no longer matches.
"""
from typing import Any

from django.core.management.commands.flush import Command as FlushCommand
from django.db import connections

from audits.triggers import create_triggers, drop_triggers


class Command(FlushCommand):
    def handle(self, **options: Any) -> None:
        connection = connections[options["database"]]
        drop_triggers(connection)
        try:
            super().handle(**options)
        finally:
            create_triggers(connection)
