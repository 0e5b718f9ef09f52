"""Small query helpers shared by the selectors and services."""
from __future__ import annotations

import re
from typing import Any, Callable, Generic, TypeVar

from django.db import DatabaseError, connections
from django.db.models import Model, QuerySet
from django.db.models import sql as sql_query
from django.db.models.constants import OnConflict
from django.db.models.query import ModelIterable, get_related_populators

M = TypeVar("M", bound=Model)


def by_key(qs: QuerySet[M]) -> M | None:
    """The row a lookup by a unique key finds, or None.

    ``.first()`` orders by the model's ``Meta.ordering`` (or the primary key) before it takes one
    row. On a lookup by a unique key that order changes nothing, and Django 5.2 pays for it in
    Python: to compile an ORDER BY it builds a position reference for every selected column, so
    the wider the ``select_related``, the dearer. Measured under load on a registration, the
    ORDER BY of ``.first()`` alone was about 6 % of the server's CPU. Only for filters that match
    at most one row (or where any matching row will do); anywhere else, keep ``.first()``.
    """
    return next(iter(qs.order_by()[:1]), None)


_PLACEHOLDER = re.compile(r"%%|%s")


def _plans(using: str) -> dict[Any, Any]:
    """This connection's built statements: they live and die with the connection."""
    return connections[using].__dict__.setdefault("_compiled_plans", {})


def _literal(value: Any) -> str | None:
    """``value`` as an SQL literal both backends read alike, or None to leave it a parameter.

    Only plain text and integers: text is quoted the standard way (both PostgreSQL, with its
    default ``standard_conforming_strings``, and SQLite double a quote and read backslashes as
    they are) and ``%`` doubled for the driver's placeholder syntax; anything else (booleans,
    dates, lists, JSON) stays bound, where its adapter types it.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    if isinstance(value, int):
        return str(value)
    if "\x00" in value:
        return None
    return "'" + value.replace("'", "''").replace("%", "%%") + "'"


def inline_constants(sql: str, params: list[Any], keep: set[int]) -> tuple[str, list[Any], dict[int, int]]:
    """Write every parameter not in ``keep`` (positions) into ``sql`` as a literal.

    Returns the new SQL, its remaining parameters, and where each kept position went.
    Why: a compiled read is a prepared statement on PostgreSQL, and after a few runs it may be
    planned once for all values (a generic plan). Such a plan cannot use a partial index whose
    condition names constants (``state IN ('waiting_for_evidence', ...)``, ``stage = 'staging'``)
    when the query carries those constants as parameters: it cannot prove they match. Measured on
    the promotion benchmark's database after three rounds, with no autovacuum: the open-request
    lookup 2.8 ms generic against 0.03 ms with the states written in, the stage holders' read
    5.5 ms against 0.6 ms (docs/benchmarks/promotions.md). The values a caller passes stay bound.
    """
    out: list[Any] = []
    moved: dict[int, int] = {}
    at = 0

    def place(match: re.Match[str]) -> str:
        nonlocal at
        if match.group() == "%%":
            return "%%"
        i, at = at, at + 1
        literal = None if i in keep else _literal(params[i])
        if literal is None:
            moved[i] = len(out)
            out.append(params[i])
            return "%s"
        return literal

    text = _PLACEHOLDER.sub(place, sql)
    if at != len(params):
        raise TypeError(f"compiled read: {at} placeholders for {len(params)} parameters")
    return text, out, moved


class _Plan:
    """One compiled read on one connection: its SQL, where each value goes, how rows become objects."""

    __slots__ = ("sql", "params", "slots", "compiler", "converters", "model", "start", "end", "init_list",
                 "populators", "annotations")

    def __init__(self: _Plan, qs: QuerySet[Any], sentinels: dict[str, Any]) -> None:
        if qs._iterable_class is not ModelIterable or qs._prefetch_related_lookups or qs._known_related_objects:
            raise TypeError("a compiled read returns model instances: no values(), prefetch_related() or "
                            "related-manager querysets")
        compiler = qs.query.get_compiler(using=qs.db)
        sql, params = compiler.as_sql()  # also fills compiler.select, klass_info and annotation_col_map
        self.sql, self.params = sql, list(params)
        self.slots: list[tuple[int, str]] = []
        for name, sentinel in sentinels.items():
            at = [i for i, p in enumerate(self.params) if p == sentinel]
            if not at:
                raise TypeError(f"compiled read: the value {name!r} is not a parameter of the SQL as given; "
                                "its SQL would depend on the value")
            self.slots += [(i, name) for i in at]
        self.sql, self.params, moved = inline_constants(sql, self.params, {i for i, _ in self.slots})
        self.slots = [(moved[i], name) for i, name in self.slots]
        self.compiler = compiler
        self.converters = compiler.get_converters([s[0] for s in compiler.select[:compiler.col_count]])
        klass_info = compiler.klass_info
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [f[0].target.attname for f in compiler.select[self.start:self.end]]
        self.populators = get_related_populators(klass_info, compiler.select, qs.db)
        self.annotations = compiler.annotation_col_map


class Compiled(Generic[M]):
    """A read whose SQL Django compiles once per database connection; later calls only run it.

    Why: compiling a queryset is most of what a lookup costs in Python. Measured on the token
    lookup (token, user and team, 40 columns): 1.02 ms through the ORM, of which 0.83 ms is
    building and compiling the SQL, against 0.30 ms to run that same SQL. The pipeline's
    register + promote run a dozen such reads, each with the same shape every time.

    ``build`` returns the queryset for given values; it is called once per connection with
    sentinel values of the declared types (``str`` or ``int``), and each sentinel must come out
    unchanged among the SQL's parameters (once or more), so the SQL cannot depend on the value:
    a ``None`` that becomes ``IS NULL`` or an out-of-range integer is refused at that first call,
    and an ``__in`` list takes one declared value per element.
    Rows become instances exactly as ``QuerySet`` makes them (Django's own converters and
    ``select_related`` populators), so a compiled read returns what the queryset would. Every
    other value in the SQL (a state list, a stage name, a permission codename) is written in as a
    literal (``inline_constants``), so PostgreSQL can plan the statement once and still use the
    partial indexes those constants name.
    """

    _INT_BASE = 2_000_000_000  # within every integer column's range, so no lookup turns it away

    def __init__(self: Compiled[M], label: str, build: Callable[..., QuerySet[M]], /, **kinds: type) -> None:
        if any(kind not in (str, int) for kind in kinds.values()):
            raise TypeError("compiled read values must be declared str or int")
        self.name = label
        self.build = build
        self.sentinels: dict[str, Any] = {
            key: (f"\x1fcompiled:{label}:{key}\x1f" if kind is str else self._INT_BASE - i)
            for i, (key, kind) in enumerate(kinds.items())}

    def _plan(self: Compiled[M], using: str) -> _Plan:
        plans = _plans(using)
        plan = plans.get(self.name)
        if plan is None:
            plan = plans[self.name] = _Plan(self.build(**self.sentinels), self.sentinels)
        return plan

    def all(self: Compiled[M], using: str = "default", /, **values: Any) -> list[M]:
        """Every matching row as an instance, in the queryset's order."""
        if values.keys() != self.sentinels.keys():
            raise TypeError(f"compiled read {self.name} takes {sorted(self.sentinels)}, got {sorted(values)}")
        plan = self._plan(using)
        params = list(plan.params)
        for at, key in plan.slots:
            params[at] = values[key]
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(plan.sql, params)
            rows: Any = cursor.fetchall()
        if plan.converters:
            rows = plan.compiler.apply_converters(rows, plan.converters)
        out = []
        for row in rows:
            obj = plan.model.from_db(using, plan.init_list, row[plan.start:plan.end])
            for populator in plan.populators:
                populator.populate(row, obj)
            for attr, at in plan.annotations.items():
                setattr(obj, attr, row[at])
            out.append(obj)
        return out

    def one(self: Compiled[M], using: str = "default", /, **values: Any) -> M | None:
        """The first row, or None: for lookups by a unique key (build them with ``[:1]``)."""
        rows = self.all(using, **values)
        return rows[0] if rows else None


class CompiledInsert(Generic[M]):
    """``INSERT``s of one model's new instances, the SQL built once per connection and row count.

    Why: ``objects.create``, ``bulk_create`` and ``save`` rebuild and recompile their SQL on every
    call; on the pipeline's register + promote (two creates, a two-row ``bulk_create`` and two
    link-table inserts) that was most of the ORM writes' CPU, about a sixth of the server's
    (py-spy under the promotion benchmark). The SQL is Django's own for those instances, and each
    value goes through the field's own ``pre_save`` and ``get_db_prep_save``, as ``save()`` does;
    no signals are sent (no model of this project listens to save signals). ``ignore_conflicts``
    adds Django's ``ON CONFLICT DO NOTHING`` and returns no keys, as ``bulk_create`` does.
    """

    def __init__(self: CompiledInsert[M], model: type[M], *, ignore_conflicts: bool = False,
                 with_key: bool = False) -> None:
        """``with_key``: the instances carry their primary key, reserved from the table's sequence
        (``reserve_key``, or ``registry.services.lock_model_reserving``), which is inserted as is."""
        self.model = model
        self.ignore_conflicts = ignore_conflicts
        self.with_key = with_key
        meta = model._meta
        self.fields = [f for f in meta.concrete_fields
                       if not f.generated and (with_key or f is not meta.auto_field)]
        self.key = f"insert:{meta.label}:{int(ignore_conflicts)}:{int(with_key)}"

    def _sql(self: CompiledInsert[M], using: str, objs: list[M]) -> tuple[str, bool, bool]:
        """Django's SQL for ``len(objs)`` rows; whether it returns keys; whether it takes columns (UNNEST)."""
        connection = connections[using]
        plans = _plans(using)
        key = (self.key, len(objs))
        plan = plans.get(key)
        if plan is None:
            query = sql_query.InsertQuery(self.model, on_conflict=OnConflict.IGNORE if self.ignore_conflicts else None)
            query.insert_values(self.fields, objs, raw=False)
            compiler = query.get_compiler(using=using)
            features = connection.features
            returning = not self.ignore_conflicts and not self.with_key and (
                features.can_return_rows_from_bulk_insert if len(objs) > 1 else features.can_return_columns_from_insert)
            if not returning and not self.ignore_conflicts and len(objs) > 1:
                raise TypeError("compiled insert: this database cannot return the keys of several new rows")
            if returning:
                compiler.returning_fields = [self.model._meta.pk]
            statements = compiler.as_sql()
            if len(statements) != 1:
                raise TypeError(f"compiled insert of {len(objs)} {self.model._meta.label} rows is not one statement")
            sql, params = statements[0]
            # PostgreSQL's bulk form binds one array per column (``SELECT * FROM UNNEST(...)``).
            by_column = " FROM UNNEST(" in sql
            if len(params) != (len(self.fields) if by_column else len(self.fields) * len(objs)):
                raise TypeError(f"compiled insert of {self.model._meta.label}: the SQL does not bind one value per field")
            plan = plans[key] = (sql, returning, by_column)
        return plan

    def _params(self: CompiledInsert[M], using: str, objs: list[M], by_column: bool) -> list[Any]:
        """The values in the order the SQL takes them: row by row, or one array per column."""
        connection = connections[using]
        rows = [[f.pre_save(obj, add=True) for f in self.fields] for obj in objs]
        if any(hasattr(value, "resolve_expression") for row in rows for value in row):
            raise TypeError(f"compiled insert of {self.model._meta.label}: expressions are not supported; use the ORM")
        rows = [[f.get_db_prep_save(value, connection) for f, value in zip(self.fields, row)] for row in rows]
        if by_column:
            return [list(column) for column in zip(*rows)]
        return [value for row in rows for value in row]

    def statement(self: CompiledInsert[M], objs: list[M], using: str = "default") -> tuple[str, list[Any], bool]:
        """The SQL and parameters that insert ``objs``, and whether the SQL returns their keys (to embed it)."""
        if not objs:
            raise TypeError("compiled insert: no rows")
        if self.with_key and any(obj.pk is None for obj in objs):
            raise TypeError(f"compiled insert of {self.model._meta.label}: every row needs its reserved key")
        sql, returning, by_column = self._sql(using, objs)
        return sql, self._params(using, objs, by_column), returning

    def inserted(self: CompiledInsert[M], objs: list[M], using: str = "default",
                 keys: list[tuple[Any, ...]] | None = None) -> list[M]:
        """Mark ``objs`` as saved (in ``using``), as ``bulk_create`` does; ``keys``: the rows ``statement`` returned."""
        if keys is not None:
            if len(keys) != len(objs):
                raise TypeError(f"compiled insert: {len(keys)} keys for {len(objs)} rows")
            for obj, (pk,) in zip(objs, keys):
                obj.pk = pk
        for obj in objs:
            obj._state.adding = False
            obj._state.db = using
        return objs

    def insert(self: CompiledInsert[M], objs: list[M], using: str = "default") -> list[M]:
        """Insert ``objs`` (new instances) in one statement; their primary keys are set, as ``bulk_create`` sets them."""
        if not objs:
            return objs
        sql, params, returning = self.statement(objs, using)
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            if returning:
                return self.inserted(objs, using, keys=cursor.fetchall())
            if not self.ignore_conflicts and not self.with_key:
                objs[0].pk = connection.ops.last_insert_id(cursor, self.model._meta.db_table, self.model._meta.pk.column)
        return self.inserted(objs, using)


def key_sequence(model: type[Model], using: str = "default") -> str | None:
    """The sequence ``model``'s primary keys come from (looked up once per connection); None on SQLite.

    Why: a row whose content depends on its own key (a promotion request's receipt and stage
    history name it) can take its key first and be inserted once, complete, instead of inserted
    and then updated in the same transaction, which costs a statement, a second version of the
    row and a second entry in each of its indexes. PostgreSQL's sequences hand out each value
    once, whatever becomes of the transaction. SQLite has no sequence to take from: callers
    insert first there.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    plans = _plans(using)
    key = ("sequence", model._meta.label)
    sequence = plans.get(key)
    if sequence is None:
        meta = model._meta
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)",
                           [connection.ops.quote_name(meta.db_table), meta.pk.column])
            row = cursor.fetchone()
        if not row or not row[0]:
            raise TypeError(f"{meta.label}'s primary key has no sequence")
        sequence = plans[key] = row[0]
    return sequence


def reserve_key(model: type[Model], using: str = "default") -> int | None:
    """The next primary key of ``model``'s table, taken from its sequence now; None on SQLite (``key_sequence``).

    ``registry.services.lock_model`` can take one in the statement that locks a model instead.
    """
    sequence = key_sequence(model, using)
    if sequence is None:
        return None
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT nextval(%s::regclass)", [sequence])
        return int(cursor.fetchone()[0])


def compiled_update(obj: Model, fields: list[str], using: str = "default") -> None:
    """``obj.save(update_fields=fields)``, its SQL built once per connection; a row it did not find is an error.

    The same values go to the database (each field's ``pre_save`` and ``get_db_prep_save``) and
    the same ``DatabaseError`` is raised when no row was updated; no signals are sent.
    """
    connection = connections[using]
    meta = obj._meta
    targets = [meta.get_field(name) for name in fields]
    plans = _plans(using)
    key = ("update", meta.label, tuple(fields))
    sql = plans.get(key)
    if sql is None:
        qn = connection.ops.quote_name
        sets = ", ".join(f"{qn(f.column)} = %s" for f in targets)
        sql = plans[key] = f"UPDATE {qn(meta.db_table)} SET {sets} WHERE {qn(meta.pk.column)} = %s"
    params = [f.get_db_prep_save(f.pre_save(obj, add=False), connection) for f in targets]
    params.append(meta.pk.get_db_prep_value(obj.pk, connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != 1:
            raise DatabaseError("Save with update_fields did not affect any rows.")
