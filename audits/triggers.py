"""Creating and dropping the append-only triggers; shared by the migration, ``flush`` and tests."""
from __future__ import annotations

from typing import Any

TABLES = ["audits_auditevent", "audits_auditcheckpoint"]


def create_triggers(connection: Any) -> None:
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("""
                CREATE OR REPLACE FUNCTION audits_refuse_change() RETURNS trigger AS $$
                BEGIN
                  RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'insufficient_privilege';
                END $$ LANGUAGE plpgsql;
            """)
            for table in TABLES:
                cur.execute(f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
                            f"FOR EACH ROW EXECUTE FUNCTION audits_refuse_change();")
                cur.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                            f"FOR EACH STATEMENT EXECUTE FUNCTION audits_refuse_change();")
        elif connection.vendor == "sqlite":
            for table in TABLES:
                for op in ("UPDATE", "DELETE"):
                    cur.execute(f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} BEGIN "
                                f"SELECT RAISE(ABORT, 'audit log is append-only: {op} on {table} refused'); END;")


def drop_triggers(connection: Any) -> None:
    with connection.cursor() as cur:
        for table in TABLES:
            if connection.vendor == "postgresql":
                cur.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}")
                cur.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            elif connection.vendor == "sqlite":
                cur.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
                cur.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
