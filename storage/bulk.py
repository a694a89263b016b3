"""Bulk SQL for batch writers: the pipelines' stores and the hub's delivery tables.

A batch of hundreds of commands writes hundreds of rows per table. Through SQLAlchemy's
``insert(table), rows`` on PostgreSQL that is one multi-row ``INSERT ... VALUES`` with
thousands of named parameters, which the driver re-parses (a regular expression over the
whole text, uncached above 4 KiB) and the server plans anew for every batch size: most of
a batch's time went there. On PostgreSQL these helpers therefore write with ``COPY ...
FROM STDIN`` inside the caller's transaction, and pass id lists as one array parameter
(``= ANY(:ids)``), so that each statement's text is the same whatever the batch size. Other
databases (SQLite, the embedded default) keep the plain statements.

Values go through each column type's own bind processing first (JSON columns become the
driver's JSON values, as with an INSERT), so a COPY stores exactly what an INSERT would.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import ARRAY, REGCLASS
from sqlmodel import Session

from schemas import fast

__all__ = ["any_of", "insert_rows", "is_postgres_session", "json_of", "matching", "next_ids"]


def is_postgres_session(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def json_of(model: BaseModel | None) -> orjson.Fragment | None:
    """A JSON column's value for ``model`` as pydantic serializes it (``mode="json"``),
    without building the dict first: for engines made by ``hub.db.create_db_engine``,
    whose JSON serializer writes the fragment as it is. The text is the one an event of the
    same object was sent with, if there was one (:func:`schemas.fast.model_json`)."""
    return None if model is None else orjson.Fragment(fast.model_json(model))


def any_of(session: Session, column: sa.ColumnElement[Any],
           values: Sequence[Any], item: sa.types.TypeEngine[Any] | None = None,
           ) -> sa.ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``column = ANY(array)``: one parameter, one text."""
    if is_postgres_session(session):
        array = ARRAY(item if item is not None else column.type)
        return column == sa.any_(sa.bindparam(None, list(values), type_=array))
    return column.in_(values)


def matching(session: Session, table: sa.Table, column: sa.Column[Any], values: Sequence[Any],
             *, equal: Mapping[sa.Column[Any], Any] | None = None) -> sa.Select[Any]:
    """``SELECT table.* WHERE column IN values`` (and each of ``equal``'s columns = its value).

    On PostgreSQL the values are joined as a table (``unnest``), the ``equal`` values as
    columns of it, so that each value is one probe of an index on (equal columns...,
    column). As ``network = :n AND user_id = ANY(:ids)`` on a registry filling up faster
    than autovacuum analyzes it, the planner took the network for a rare value and
    scanned the whole network (the index used for the network only) for every batch:
    seconds per ten thousand registrations, growing with the registry.
    """
    fixed = list((equal or {}).items())
    if not is_postgres_session(session):
        return sa.select(table).where(column.in_(values), *(c == v for c, v in fixed))
    arrays = [sa.bindparam(None, list(values), type_=ARRAY(column.type))] + [
        sa.bindparam(None, [v] * len(values), type_=ARRAY(c.type)) for c, v in fixed]
    names = ["value"] + [f"equal_{i}" for i in range(len(fixed))]
    wanted = sa.func.unnest(*arrays).table_valued(*names).render_derived()
    on = [column == wanted.c.value] + [c == wanted.c[f"equal_{i}"] for i, (c, _) in
                                       enumerate(fixed)]
    return sa.select(table).select_from(wanted.join(table, sa.and_(*on)))


def next_ids(session: Session, table: sa.Table, count: int, column: str = "id") -> list[int]:
    """``count`` new ids from the sequence behind ``table.column`` (PostgreSQL), ascending.

    The sequence is named once per database: ``nextval(pg_get_serial_sequence(...))``
    looked it up again for every id, 14 ms for a batch's 6,000 outbox ids against 3 ms.
    """
    if count <= 0:
        return []
    sequence = _sequence_of(session, table.name, column)
    ids = session.execute(sa.select(sa.func.nextval(
        sa.cast(sa.bindparam(None, sequence, type_=sa.String()), REGCLASS))).select_from(
        sa.func.generate_series(1, count))).scalars().all()
    return sorted(ids)


_SEQUENCES: dict[tuple[str, str, str], str] = {}


def _sequence_of(session: Session, table: str, column: str) -> str:
    key = (session.get_bind().engine.url.render_as_string(hide_password=True), table, column)
    name = _SEQUENCES.get(key)
    if name is None:
        name = session.execute(sa.select(sa.func.pg_get_serial_sequence(table, column))
                               ).scalar_one()
        if name is None:
            raise LookupError(f"{table}.{column} has no sequence")
        _SEQUENCES[key] = name
    return name


def insert_rows(session: Session, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` in the session's transaction.

    PostgreSQL: one ``COPY`` of the rows' keys, each value bound as an INSERT binds it (None
    is SQL NULL, or JSON null in a JSON column). Elsewhere: one executemany INSERT.
    """
    if not rows:
        return
    if not is_postgres_session(session):
        session.execute(sa.insert(table), list(rows))
        return
    names = tuple(rows[0])
    dialect = session.get_bind().dialect
    statement, types, processors = _copy_plan(table, names, dialect)
    values_of = operator.itemgetter(*names)
    single = len(names) == 1
    dbapi = dialect.loaded_dbapi
    cursor = session.connection().connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                values = [values_of(row)] if single else list(values_of(row))
                for i, process in processors:
                    values[i] = process(values[i])
                copy.write_row(values)
    except dbapi.Error as err:
        # As SQLAlchemy raises for its own statements (IntegrityError, OperationalError ...),
        # so that callers tell a duplicate or an outage from a bug the same way.
        raise sa.exc.DBAPIError.instance(
            statement, None, err, dbapi.Error,
            connection_invalidated=dialect.is_disconnect(err, None, cursor)) from err
    finally:
        cursor.close()


@functools.cache
def _copy_plan(table: sa.Table, names: tuple[str, ...], dialect: sa.Dialect,
               ) -> tuple[str, list[str], list[tuple[int, Any]]]:
    """The binary COPY statement, its column types (for the driver) and the bind processors
    of the columns that have one, by position.

    Binary, not text: the driver then sends bytea and timestamps as they are instead of
    escaping each value (a fifth of the CPU per row for the outbox's JSON values).
    """
    impls = [table.c[name].type.dialect_impl(dialect) for name in names]
    # "VARCHAR(250)" -> "varchar", "TIMESTAMP WITH TIME ZONE" -> the same, lower case.
    types = [impl.compile(dialect=dialect).split("(")[0].strip().lower() for impl in impls]
    columns = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    target = dialect.identifier_preparer.format_table(table)
    statement = f"COPY {target} ({columns}) FROM STDIN (FORMAT BINARY)"
    processors = [(i, proc) for i, impl in enumerate(impls)
                  if (proc := impl.bind_processor(dialect)) is not None]
    return statement, types, processors
