"""Function calls (``POST /rpc/<name>``) for the PostgREST TEST STAND-IN.

As PostgREST does, a call is resolved by the function's name and the names of the JSON
body's keys (every argument without a default must be there, no unknown one may be), and
the arguments are bound by converting the body with ``json_to_record``, each to its
parameter's type. The answer's shape follows the function's return type: a JSON array of
objects for a set or table of rows, one object for a single row type, the bare JSON value
for a scalar (an array of them for a set), and ``204 No Content`` for ``void``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from tests.standins._postgrest_query import QueryError

__all__ = ["Function", "call_statement", "find_function"]

_INPUT_MODES = {"i", "b", "v"}  # in, inout, variadic


@dataclass(frozen=True)
class Function:
    schema: str
    name: str
    #: Input arguments in order: (name, type as SQL text).
    arguments: tuple[tuple[str, str], ...]
    #: How many leading arguments have no default.
    required: int
    returns_set: bool
    returns_row: bool  # a composite type, or a record of OUT columns
    returns_void: bool

    def accepts(self, names: set[str]) -> bool:
        known = {name for name, _ in self.arguments}
        needed = {name for name, _ in self.arguments[: self.required]}
        return needed <= names <= known


def find_function(
    conn: psycopg.Connection[Any], schema: str, name: str, argument_names: set[str]
) -> Function:
    """The overload of ``schema.name`` the body's argument names select, else PGRST202."""
    rows = conn.execute(
        "SELECT p.proargnames, p.proargmodes, "
        "  array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) t), "
        "  p.pronargs, p.pronargdefaults, p.proretset, "
        "  ty.typtype = 'c' OR (ty.oid = 'record'::regtype AND p.proargmodes IS NOT NULL), "
        "  p.prorettype = 'void'::regtype "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "JOIN pg_type ty ON ty.oid = p.prorettype "
        "WHERE n.nspname = %s AND p.proname = %s AND p.prokind = 'f'",
        [schema, name],
    ).fetchall()
    for names, modes, types, count, defaults, retset, row, void in rows:
        names = names or []
        if modes is None:
            inputs = names[:count]
        else:
            inputs = [n for n, mode in zip(names, modes, strict=False) if mode in _INPUT_MODES]
        if len(inputs) != count or not all(inputs):
            continue  # unnamed arguments: PostgREST cannot bind them by name either
        function = Function(
            schema,
            name,
            tuple(zip(inputs, types, strict=True)),
            count - defaults,
            retset,
            row,
            void,
        )
        if function.accepts(argument_names):
            return function
    listed = ", ".join(sorted(argument_names))
    raise QueryError(
        404,
        "PGRST202",
        f"Could not find the function {schema}.{name}({listed}) in the schema cache",
        f"Searched for the function {schema}.{name} with parameters {listed} or with a single "
        "unnamed json/jsonb parameter, but no matches were found in the schema cache.",
    )


def call_statement(function: Function, argument_names: set[str]) -> sql.Composed:
    """``SELECT <json answer>, <row count>`` calling ``function`` with the arguments of the
    JSON body bound as the one parameter."""
    given = [(n, t) for n, t in function.arguments if n in argument_names]
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in given
    )
    arguments = sql.SQL(", ").join(
        sql.SQL("{0} => _a.{0}").format(sql.Identifier(n)) for n, _ in given
    )
    call = sql.SQL("{}.{}({})").format(
        sql.Identifier(function.schema), sql.Identifier(function.name), arguments
    )
    source = (
        sql.SQL("json_to_record(%s::json) AS _a({}), LATERAL {} AS _f").format(columns, call)
        if given
        else sql.SQL("{} AS _f").format(call)
    )
    # A function returning a base type names its one column after the alias, so json_agg
    # of the alias gives bare values; for a row type it gives objects.
    return sql.SQL("SELECT coalesce(json_agg(_f), '[]')::text, count(*) FROM {}").format(source)
