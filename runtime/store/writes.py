"""Rows a transaction writes to one table, and the SQL that writes them in each dialect.

A :class:`Write` says what to write (table, columns, rows, what to do on a conflict,
what to return); :func:`as_values` renders it as multi-row ``INSERT ... VALUES``
statements (``?`` placeholders, chunked under SQLite's parameter limit) and
:func:`as_json` as ONE statement whose rows travel as a single JSON parameter
(PostgreSQL's ``json_populate_recordset``): its text does not change with the number
of rows, so the driver and the server keep one parsed and planned statement for it
however many rows a transaction writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from escalade.runtime.store.rows import chunks, flat, values_list

# The rows of a RETURNING clause, handed over once the statement ran.
Then = Callable[[list[Any]], None]


@dataclass(frozen=True, slots=True)
class Write:
    """``rows`` (tuples in ``columns`` order) to insert into ``table``; ``tail``: what
    follows the rows (``ON CONFLICT ...``, ``RETURNING ...``); ``then`` receives the rows
    returned. ``delete``: delete the rows whose (one) column is among ``rows`` instead."""

    table: str
    columns: str
    rows: Sequence[tuple[Any, ...]]
    tail: str = ""
    then: Then | None = None
    delete: bool = False


def as_values(write: Write) -> list[tuple[str, list[Any]]]:
    """``write`` as statements with ``?`` placeholders, a chunk of rows each."""
    out = []
    for part in chunks(write.rows):
        if write.delete:
            marks = ", ".join("?" for _ in part)
            out.append(
                (f"DELETE FROM {write.table} WHERE {write.columns} IN ({marks})", flat(part))
            )
        else:
            rows = values_list(len(part[0]), len(part))
            sql = f"INSERT INTO {write.table}({write.columns}) VALUES {rows}{write.tail}"
            out.append((sql, flat(part)))
    return out


def as_json(write: Write) -> tuple[str, list[Any]]:
    """``write`` as ONE statement with one parameter (PostgreSQL): the rows as a JSON array
    of objects, turned into rows of the table's own type by the server."""
    if write.delete:
        ids = [row[0] for row in write.rows]
        return f"DELETE FROM {write.table} WHERE {write.columns} = ANY(CAST(? AS BIGINT[]))", [ids]
    names = write.columns.split(", ")
    document = json.dumps([dict(zip(names, row, strict=True)) for row in write.rows])
    sql = (
        f"INSERT INTO {write.table}({write.columns}) SELECT {write.columns}"
        f" FROM json_populate_recordset(CAST(NULL AS {write.table}), CAST(? AS JSON)){write.tail}"
    )
    return sql, [document]
