"""The orm store on MariaDB with the server's default collation (``utf8mb4_general_ci``):
exact keys, the database's limits as typed errors before any I/O, and the migration that
makes the key columns exact on a database created by the earlier migrations."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import IntegrityError, connections

from prism_storage import ORMStorageBackend
from prism_storage.backends.orm.exact_keys import EXACT_COLLATIONS
from prism_storage.backends.orm.limits import MYSQL, statement_bytes
from prism_storage.exceptions import InvalidValueError
from prism_storage.models import Record
from prism_storage.testing.conformance import nested_value

pytestmark = pytest.mark.django_db(transaction=True, databases=["mariadb", "mariadb_unreachable"])

#: Pairs one insensitive or padding collation takes for one key.
LOOKALIKES = [("Agent", "agent"), ("trail ", "trail"), ("Äpfel", "apfel"), ("é", "e")]


def _column_collations() -> dict[str, str]:
    with connections["mariadb"].cursor() as cursor:
        cursor.execute(
            "SELECT COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
            "AND COLUMN_NAME IN ('namespace', 'key')",
            [Record._meta.db_table],
        )
        return dict(cursor.fetchall())


def _server_default_collation() -> str:
    with connections["mariadb"].cursor() as cursor:
        cursor.execute("SELECT @@collation_database")
        return str(cursor.fetchone()[0])


async def test_the_server_default_is_insensitive_and_the_key_columns_are_exact(
    close_db_connections,
):
    """The premise of the other tests: the database's own default would merge the keys."""
    assert (await sync_to_async(_server_default_collation)()).endswith("_ci")
    collations = await sync_to_async(_column_collations)()
    assert set(collations.values()) <= EXACT_COLLATIONS
    assert set(collations) == {"namespace", "key"}


@pytest.mark.parametrize("options", [{}, {"batch": False}], ids=["batched", "one-by-one"])
async def test_keys_differing_in_case_or_trailing_spaces_are_distinct(
    options, close_db_connections
):
    store = ORMStorageBackend("exact", using="mariadb", **options)
    for first, second in LOOKALIKES:
        await store.set(first, {"key": first})
        await store.set(second, {"key": second})
    # Concurrent writers (one batch on the batched path) as well.
    await asyncio.gather(*(store.set(f"{a}!", {"key": a}) for a, _ in LOOKALIKES))
    await asyncio.gather(*(store.set(f"{b}!", {"key": b}) for _, b in LOOKALIKES))
    for key in [k for pair in LOOKALIKES for k in pair]:
        assert await store.get(key) == {"key": key}
        assert await store.get(f"{key}!") == {"key": key}
    every = [k for pair in LOOKALIKES for k in pair]
    assert await store.get_many(every) == {key: {"key": key} for key in every}
    listed = [key async for key in store.iter_keys()]
    assert sorted(listed) == sorted(every + [f"{k}!" for k in every])
    page = await store.keys(prefix="trail")
    assert sorted(page.keys) == ["trail", "trail ", "trail !", "trail!"]
    await store.delete("agent")
    assert await store.get("Agent") == {"key": "Agent"}
    await store.close()


async def test_versioned_operations_keep_lookalike_keys_apart(close_db_connections):
    store = ORMStorageBackend("exact-versions", using="mariadb")
    assert (await store.put("Agent", {"v": 1}, if_absent=True)).created
    assert (await store.put("agent", {"v": 2}, if_absent=True)).created
    assert await store.append("trail", ["a"]) == 1
    assert await store.append("trail ", ["b", "c"]) == 2
    assert await store.pop("trail ") == "c"
    assert await store.remove("agent")
    records = await store.get_many_records(["Agent", "agent", "trail", "trail "])
    assert {key: record.value for key, record in records.items()} == {
        "Agent": {"v": 1},
        "trail": {"messages": ["a"]},
        "trail ": {"messages": ["b"]},
    }
    await store.close()


async def test_namespaces_differing_in_case_never_see_each_other(close_db_connections):
    upper = ORMStorageBackend("Agents", using="mariadb")
    lower = ORMStorageBackend("agents", using="mariadb")
    padded = ORMStorageBackend("agents ", using="mariadb")
    await upper.set("k", {"ns": "Agents"})
    assert await lower.get("k") is None and await padded.get("k") is None
    await lower.set("k", {"ns": "agents"})
    await padded.set("k", {"ns": "agents "})
    assert await upper.get("k") == {"ns": "Agents"}
    assert await lower.get("k") == {"ns": "agents"}
    assert [key async for key in lower.iter_keys()] == ["k"]
    assert await upper.sweep() == 0
    for store in (upper, lower, padded):
        await store.close()


def _json_valid(text: str) -> bool:
    with connections["mariadb"].cursor() as cursor:
        cursor.execute("SELECT JSON_VALID(%s)", [text])
        return bool(cursor.fetchone()[0])


async def test_nesting_deeper_than_mariadb_takes_is_refused_before_any_io(close_db_connections):
    """MariaDB's JSON check refuses 32 nested levels (Django reported an IntegrityError):
    the store refuses them itself, typed, even with the database unreachable."""
    too_deep = nested_value(31)  # 32 dicts
    deepest = nested_value(30)
    # The database's own limit, measured: these are the exact edges.
    assert await sync_to_async(_json_valid)(_dumps(deepest))
    assert not await sync_to_async(_json_valid)(_dumps(too_deep))

    offline = ORMStorageBackend("deep", using="mariadb_unreachable")
    for write in (
        offline.set("k", too_deep),
        offline.set_many({"k": {"list": [too_deep]}}),
        offline.put("k", too_deep),
        offline.append("k", [nested_value(30)]),  # 32 dicts once inside the record
    ):
        with pytest.raises(InvalidValueError, match="deeper than 31 levels"):
            await write
    await offline.close()

    store = ORMStorageBackend("deep", using="mariadb")
    await store.set("k", deepest)
    assert await store.get("k") == deepest
    with pytest.raises(InvalidValueError, match="deeper than 31 levels"):
        await store.set("k", too_deep)
    assert await store.get("k") == deepest
    await store.close()


def _dumps(value: object) -> str:
    import json

    return json.dumps(value)


def _max_allowed_packet() -> int:
    with connections["mariadb"].cursor() as cursor:
        cursor.execute("SELECT @@max_allowed_packet")
        return int(cursor.fetchone()[0])


def _escaped_by_the_driver(text: str) -> int:
    connection = connections["mariadb"]
    connection.ensure_connection()
    return len(connection.connection.escape_string(text.encode()))


@pytest.mark.parametrize(
    "value",
    [
        {"plain": "abc"},
        {"quotes": 'say "hi"', "apostrophe": "it's", "backslash": "C:\\dir\\"},
        {"controls": "line\nbreak\ttab\r\x1a\x7f", "escaped": "\\u0000"},
        {"unicode": "héllo 日本語 🤖", "rtl": "שלום"},
        {"nested": [{"k": ['"', "\\", "'"]}] * 3},
    ],
    ids=["plain", "quotes", "controls", "unicode", "nested"],
)
async def test_the_size_counted_is_the_drivers_escaped_size(value, close_db_connections):
    """``statement_bytes`` of the codec's text is exactly what mysqlclient sends for it."""
    from prism_storage.codec import encode_value

    text = encode_value(value)
    assert statement_bytes(text) == await sync_to_async(_escaped_by_the_driver)(text)


async def test_values_larger_than_a_statement_takes_are_refused_before_any_io(
    close_db_connections,
):
    limit = MYSQL.max_statement_bytes
    assert limit is not None
    offline = ORMStorageBackend("large", using="mariadb_unreachable")
    with pytest.raises(InvalidValueError, match=str(limit)):
        await offline.set("k", {"blob": "x" * limit})
    # Few characters, but each doubled by the driver's escaping.
    escapes = {"blob": "\\" * (limit // 3)}
    assert len(_dumps(escapes).encode()) < limit < statement_bytes(_dumps(escapes))
    with pytest.raises(InvalidValueError, match=str(limit)):
        await offline.set("k", escapes)
    with pytest.raises(InvalidValueError, match=str(limit)):
        await offline.set("k", {"quotes": ['"'] * (limit // 6)})
    await offline.close()

    # The server takes what the store sends (at its default max_allowed_packet, or more).
    assert await sync_to_async(_max_allowed_packet)() >= limit
    fitting = {"blob": "y" * (limit - 1024)}
    store = ORMStorageBackend("large", using="mariadb")
    await store.set("k", fitting)
    assert await store.get("k") == fitting
    await store.close()


# ----------------------------------------------------------------------- the migration


def _insert(namespace: str, key: str, value: str) -> None:
    with connections["mariadb"].cursor() as cursor:
        cursor.execute(
            "INSERT INTO prism_storage_record "
            "(namespace, `key`, value, created_at, updated_at, version) "
            "VALUES (%s, %s, %s, NOW(6), NOW(6), 'v0')",
            [namespace, key, value],
        )


async def test_the_migration_makes_keys_exact_on_a_database_made_by_the_earlier_ones(
    close_db_connections,
):
    def migrate(target: str) -> None:
        call_command("migrate", "prism_storage", target, database="mariadb", verbosity=0)

    await sync_to_async(migrate)("0003")
    try:
        # As the earlier migrations left it: the server's insensitive, padding collation.
        assert set((await sync_to_async(_column_collations)()).values()) == {
            await sync_to_async(_server_default_collation)()
        }
        await sync_to_async(_insert)("old", "Agent", '{"v": "Agent"}')
        await sync_to_async(_insert)("old", "trail", '{"v": "trail"}')
        await sync_to_async(_insert)("Old", "x", '{"v": "Old"}')
        for namespace, key in (("old", "agent"), ("old", "trail "), ("OLD", "X")):
            with pytest.raises(IntegrityError):  # what lost writes before
                await sync_to_async(_insert)(namespace, key, "{}")
    finally:
        await sync_to_async(migrate)("0004")

    assert set((await sync_to_async(_column_collations)()).values()) <= EXACT_COLLATIONS
    store = ORMStorageBackend("old", using="mariadb")
    assert await store.get_many(["Agent", "trail", "agent", "trail "]) == {
        "Agent": {"v": "Agent"},
        "trail": {"v": "trail"},
    }
    await store.set("agent", {"v": "agent"})
    await store.set("trail ", {"v": "trail "})
    assert await store.get_many(["Agent", "trail", "agent", "trail "]) == {
        key: {"v": key} for key in ("Agent", "trail", "agent", "trail ")
    }
    await sync_to_async(_insert)("OLD", "X", '{"v": "OLD"}')
    titled, upper = (ORMStorageBackend(ns, using="mariadb") for ns in ("Old", "OLD"))
    assert await titled.get("x") == {"v": "Old"}
    assert await upper.get("X") == {"v": "OLD"}
    assert await upper.get("x") is None
    await titled.close()
    await upper.close()

    # Going back refuses while the keys differ only in case, and changes nothing.
    with pytest.raises(IntegrityError):
        await sync_to_async(migrate)("0003")
    assert await store.get("agent") == {"v": "agent"}
    assert set((await sync_to_async(_column_collations)()).values()) <= EXACT_COLLATIONS
    await store.close()


def _set_key_collation(collation: str) -> None:
    with connections["mariadb"].cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {Record._meta.db_table} MODIFY `key` varchar(512) "
            f"CHARACTER SET utf8mb4 COLLATE {collation} NOT NULL"
        )


def _prism_database_checks() -> list:
    from django.core.checks import Tags, run_checks

    return [
        message
        for message in run_checks(tags=[Tags.database], databases=["mariadb"])
        if message.id.startswith("prism_storage.")
    ]


async def test_a_database_check_warns_when_the_key_columns_are_not_exact(close_db_connections):
    """What a later migration that rewrites the column without its collation would do."""
    assert await sync_to_async(_prism_database_checks)() == []
    exact = (await sync_to_async(_column_collations)())["key"]
    await sync_to_async(_set_key_collation)("utf8mb4_general_ci")
    try:
        messages = await sync_to_async(_prism_database_checks)()
    finally:
        await sync_to_async(_set_key_collation)(exact)
    assert [message.id for message in messages] == ["prism_storage.W012"]
    assert "'mariadb'" in messages[0].msg and "key (utf8mb4_general_ci)" in messages[0].msg
    assert "namespace" not in messages[0].msg
    assert await sync_to_async(_prism_database_checks)() == []
