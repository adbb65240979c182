"""PostgREST query-string grammar -> parameterised SQL, for the PostgREST TEST STAND-IN.

Covers what supabase-py sends for prism_storage: ``select``, horizontal filters
(``eq neq gt gte lt lte like ilike in is``, each optionally ``not.``), ``or``/``and``
trees, ``order``, ``limit``, ``offset``. Values are always bound as parameters; only
identifiers checked against the table's columns are composed into the statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

RESERVED = {
    "select",
    "order",
    "limit",
    "offset",
    "on_conflict",
    "columns",
    "or",
    "and",
    "not.or",
    "not.and",
}
_OPERATORS = {
    "eq": "=",
    "neq": "<>",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "like": "LIKE",
    "ilike": "ILIKE",
}
_IS_VALUES = {"null": "NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN"}


class QueryError(Exception):
    """A request PostgREST would refuse: HTTP ``status`` with a PostgREST error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message, "details": details, "hint": hint}


def parse_error(message: str) -> QueryError:
    return QueryError(400, "PGRST100", '"failed to parse filter"', message)


@dataclass
class Table:
    """What the schema cache knows about a table."""

    schema: str
    name: str
    columns: list[str]
    primary_key: list[str] = field(default_factory=list)

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    def column(self, name: str) -> sql.Identifier:
        if name not in self.columns:
            raise QueryError(400, "42703", f"column {self.name}.{name} does not exist")
        return sql.Identifier(name)


def split_names(text: str) -> list[str]:
    """Split ``a,"b c",d`` (select, columns, on_conflict) into names."""
    names, current, quoted, i = [], "", False, 0
    while i < len(text):
        char = text[i]
        if char == '"':
            quoted = not quoted
        elif char == "\\" and quoted and i + 1 < len(text):
            i += 1
            current += text[i]
        elif char == "," and not quoted:
            names.append(current.strip())
            current = ""
        else:
            current += char
        i += 1
    names.append(current.strip())
    return [n for n in names if n]


class _Reader:
    """A cursor over a filter value, following PostgREST's parser (QueryParams.hs)."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def peek(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def take(self, token: str) -> None:
        if not self.peek(token):
            raise parse_error(f"expected {token!r} at {self.pos} in {self.text!r}")
        self.pos += len(token)

    def spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def until(self, stops: str) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in stops:
            self.pos += 1
        return self.text[start : self.pos]

    def element(self) -> str:
        """A list or logic-tree value: ``"quoted \\" value"`` or characters up to , or )."""
        if self.peek('"'):
            start = self.pos
            self.pos += 1
            out = []
            while self.pos < len(self.text) and self.text[self.pos] != '"':
                if self.text[self.pos] == "\\" and self.pos + 1 < len(self.text):
                    self.pos += 1
                out.append(self.text[self.pos])
                self.pos += 1
            if self.pos < len(self.text) and (
                self.pos + 1 == len(self.text) or self.text[self.pos + 1] in ",)"
            ):
                self.pos += 1
                return "".join(out)
            self.pos = start  # not a quoted element after all: read it verbatim
        return self.until(",)")

    def items(self) -> list[str]:
        self.take("(")
        self.spaces()  # PostgREST's lexeme: spaces after "(" are dropped
        values = [self.element()]
        while self.peek(","):
            self.pos += 1
            values.append(self.element())
        self.take(")")
        return values


def _condition(
    table: Table, column: str, expression: str, reader: _Reader | None = None
) -> tuple[sql.Composable, list[Any]]:
    """SQL for ``column=expression`` (or a term of a logic tree read from ``reader``)."""
    ident = table.column(column)
    source = reader or _Reader(expression)
    negate = source.peek("not.")
    if negate:
        source.pos += 4
    operator = source.until(".")
    source.take(".")
    params: list[Any] = []
    if operator == "in":
        values = source.items()
        values = [] if values == [""] else values
        clause: sql.Composable = (
            sql.SQL("FALSE")
            if not values
            else sql.SQL("{} IN ({})").format(
                ident, sql.SQL(", ").join([sql.Placeholder()] * len(values))
            )
        )
        params = values
    elif operator == "is":
        word = (source.element() if reader else source.text[source.pos :]).lower()
        if word not in _IS_VALUES:
            raise parse_error(f"unknown is value {word!r}")
        clause = sql.SQL("{} IS {}").format(ident, sql.SQL(_IS_VALUES[word]))
    elif operator in _OPERATORS:
        value = source.element() if reader else source.text[source.pos :]
        if operator in ("like", "ilike"):
            value = value.replace("*", "%")
        clause = sql.SQL("{} {} {}").format(ident, sql.SQL(_OPERATORS[operator]), sql.Placeholder())
        params = [value]
    else:
        raise parse_error(f"unknown operator {operator!r}")
    if negate:
        clause = sql.SQL("NOT ({})").format(clause)
    return clause, params


def _logic(table: Table, operator: str, reader: _Reader) -> tuple[sql.Composable, list[Any]]:
    """An ``or(...)``/``and(...)`` tree whose ``(`` is next in ``reader``."""
    reader.take("(")
    parts: list[sql.Composable] = []
    params: list[Any] = []
    while True:
        reader.spaces()
        negate = reader.peek("not.")
        if negate:
            reader.pos += 4
        for nested in ("or(", "and("):
            if reader.peek(nested):
                reader.pos += len(nested) - 1
                clause, values = _logic(table, nested[:-1], reader)
                break
        else:
            if negate:
                reader.pos -= 4
            column = reader.until(".")
            reader.take(".")
            clause, values = _condition(table, column, "", reader)
            negate = False
        parts.append(sql.SQL("NOT ({})").format(clause) if negate else clause)
        params += values
        reader.spaces()
        if reader.peek(")"):
            reader.pos += 1
            break
        reader.take(",")
    joined = sql.SQL(" OR " if operator == "or" else " AND ").join(parts)
    return sql.SQL("({})").format(joined), params


def where(table: Table, query: list[tuple[str, str]]) -> tuple[sql.Composable, list[Any]]:
    """The WHERE clause (``TRUE`` if none) of the filters in ``query``."""
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    for name, value in query:
        if name in ("or", "and", "not.or", "not.and"):
            clause, values = _logic(table, name.removeprefix("not."), _Reader(value))
            if name.startswith("not."):
                clause = sql.SQL("NOT {}").format(clause)
        elif name in RESERVED:
            continue
        else:
            clause, values = _condition(table, name, value)
        clauses.append(clause)
        params += values
    if not clauses:
        return sql.SQL("TRUE"), []
    return sql.SQL(" AND ").join(clauses), params


def select_list(table: Table, select: str | None) -> sql.Composable:
    names = split_names(select or "*")
    if names == ["*"]:
        names = table.columns
    return sql.SQL(", ").join(table.column(name) for name in names)


def order_by(table: Table, order: str | None) -> sql.Composable:
    if not order:
        return sql.SQL("")
    terms = []
    for term in split_names(order):
        column, *modifiers = term.split(".")
        parts = [table.column(column)]
        for modifier in modifiers:
            words = {
                "asc": "ASC",
                "desc": "DESC",
                "nullsfirst": "NULLS FIRST",
                "nullslast": "NULLS LAST",
            }
            if modifier not in words:
                raise parse_error(f"unknown order modifier {modifier!r}")
            parts.append(sql.SQL(words[modifier]))
        terms.append(sql.SQL(" ").join(parts))
    return sql.SQL(" ORDER BY {}").format(sql.SQL(", ").join(terms))


def non_negative(query: dict[str, str], name: str) -> int | None:
    if name not in query:
        return None
    try:
        number = int(query[name])
    except ValueError:
        number = -1
    if number < 0:
        raise QueryError(400, "PGRST100", f'"failed to parse {name} parameter"', query[name])
    return number
