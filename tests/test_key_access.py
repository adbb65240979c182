"""Per-key access: a ``PRISM_STORAGE_ACCESS`` policy that also takes the key confines a
user to their own records, in the JSON API and in the admin store browser alike. Real
Django test clients, real file stores."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from prism_storage import sync_storages
from prism_storage.access import policy_allows, policy_checks_keys
from tests.test_access import SearchingStore

pytestmark = pytest.mark.django_db

API = "/prism/api/stores"
BROWSER = "/admin/prism_storage/record/stores"

#: Every call the policy received, to prove store-level questions get ``key=None``.
asked: list[tuple[str, str, str | None]] = []


def own_keys_only(user: Any, alias: str, operation: str, key: str | None) -> bool:
    """The documented pattern: staff see the store; each user only keys under user-<id>/."""
    asked.append((alias, operation, key))
    if key is None:
        return True
    return key.startswith(f"user-{user.pk}/")


def own_keys_by_keyword(user: Any, alias: str, operation: str, **context: Any) -> bool:
    key = context.get("key")
    return key is None or key.startswith(f"user-{user.pk}/")


def store_only(user: Any, alias: str, operation: str) -> bool:
    return operation != "delete"


@pytest.fixture(autouse=True)
def stores(settings, tmp_path):
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path)}},
        "searching": {
            "BACKEND": "tests.test_access.SearchingStore",
            "OPTIONS": {"name": "key-access-searching"},
        },
    }
    settings.PRISM_STORAGE_ACCESS = own_keys_only
    SearchingStore._data.pop("key-access-searching", None)
    asked.clear()
    yield
    SearchingStore._data.pop("key-access-searching", None)


@pytest.fixture
def users() -> tuple[User, User]:
    perms = Permission.objects.filter(
        codename__in=["view_record", "change_record", "delete_record"]
    )
    made = []
    for name in ("alice", "bob"):
        user = User.objects.create_user(name, password="pw", is_staff=True)
        user.user_permissions.set(perms)
        made.append(user)
    return made[0], made[1]


@pytest.fixture
def seeded(users):
    alice, bob = users
    store = sync_storages["default"]
    for user in (alice, bob):
        for i in range(3):
            store.set(f"user-{user.pk}/thread-{i}", {"owner": user.username, "i": i})
    store.set("shared/config", {"owner": None})
    return alice, bob


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def put(client: Client, url: str, value: dict[str, Any]) -> Any:
    return client.put(url, data=json.dumps(value), content_type="application/json")


def test_arity_is_read_from_the_signature():
    def three(user, alias, operation):  # type: ignore[no-untyped-def]
        return True

    def four(user, alias, operation, key):  # type: ignore[no-untyped-def]
        return True

    def keyword_only(user, alias, operation, *, key=None):  # type: ignore[no-untyped-def]
        return True

    for policy, keyed in [
        (three, False),
        (four, True),
        (keyword_only, True),
        (own_keys_by_keyword, True),
        ("tests.test_key_access.store_only", False),
    ]:
        from django.test import override_settings

        with override_settings(PRISM_STORAGE_ACCESS=policy):
            assert policy_checks_keys() is keyed, policy


def test_store_level_questions_get_key_none(users):
    alice, _ = users
    assert policy_allows(alice, "default", "view") is True
    assert asked == [("default", "view", None)]
    response = client_for(alice).get(f"{API}/")
    assert [s["alias"] for s in response.json()["stores"]] == ["default", "searching"]
    assert all(key is None for _, _, key in asked)


def test_api_reads_only_own_keys(seeded):
    alice, bob = seeded
    client = client_for(alice)
    own = client.get(f"{API}/default/records/user-{alice.pk}/thread-1")
    assert own.status_code == 200 and own.json()["value"] == {"owner": "alice", "i": 1}
    other = client.get(f"{API}/default/records/user-{bob.pk}/thread-1")
    # Answered exactly like a missing record: a hidden key's existence is not revealed.
    missing = client.get(f"{API}/default/records/user-{alice.pk}/none")
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()
    assert client.get(f"{API}/default/records/shared/config").status_code == 404


def test_api_writes_to_other_keys_are_refused(seeded):
    alice, bob = seeded
    client = client_for(alice)
    store = sync_storages["default"]
    theirs = f"user-{bob.pk}/thread-0"
    response = put(client, f"{API}/default/records/{theirs}", {"stolen": True})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert client.delete(f"{API}/default/records/{theirs}").status_code == 403
    response = client.post(
        f"{API}/default/append/{theirs}",
        data=json.dumps({"items": [1]}),
        content_type="application/json",
    )
    assert response.status_code == 403
    assert client.post(f"{API}/default/pop/{theirs}").status_code == 403
    assert store.get(theirs) == {"owner": "bob", "i": 0}
    # Creating under someone else's prefix is refused too; under one's own it works.
    assert put(client, f"{API}/default/records/user-{bob.pk}/new", {"a": 1}).status_code == 403
    assert not store.exists(f"user-{bob.pk}/new")
    mine = f"user-{alice.pk}/new"
    assert put(client, f"{API}/default/records/{mine}", {"a": 1}).status_code == 201
    assert client.delete(f"{API}/default/records/{mine}").status_code == 204
    assert not store.exists(mine)


def test_invalid_keys_are_400_and_never_reach_the_policy(seeded):
    alice, _ = seeded
    response = client_for(alice).get(f"{API}/default/records/bad%01key")
    assert response.status_code == 400
    assert all(key is None or "\x01" not in key for _, _, key in asked)


def test_listing_filters_every_page_and_keeps_cursors_valid(seeded):
    alice, bob = seeded
    client = client_for(alice)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"{API}/default/records/", query).json()
        assert len(body["keys"]) <= 2
        seen += body["keys"]
        pages += 1
        cursor = body["cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"user-{alice.pk}/thread-{i}" for i in range(3)]
    assert pages >= 4  # 7 keys at 2 per page: some pages were filtered short
    # A prefix inside another user's space lists nothing.
    body = client.get(f"{API}/default/records/", {"prefix": f"user-{bob.pk}/"}).json()
    assert body["keys"] == []


def test_search_returns_only_visible_hits(users):
    alice, bob = users
    store = sync_storages["searching"]
    store.set(f"user-{alice.pk}/a", {"t": 1})
    store.set(f"user-{bob.pk}/b", {"t": 2})
    response = client_for(alice).post(
        f"{API}/searching/search",
        data=json.dumps({"embedding": [1.0, 0.0], "limit": 10}),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert [hit["key"] for hit in response.json()["results"]] == [f"user-{alice.pk}/a"]


def test_keyword_policy_gets_the_key(seeded, settings):
    alice, bob = seeded
    settings.PRISM_STORAGE_ACCESS = own_keys_by_keyword
    client = client_for(alice)
    assert client.get(f"{API}/default/records/user-{alice.pk}/thread-0").status_code == 200
    assert client.get(f"{API}/default/records/user-{bob.pk}/thread-0").status_code == 404


def test_three_argument_policies_keep_working(seeded, settings):
    alice, bob = seeded
    settings.PRISM_STORAGE_ACCESS = "tests.test_key_access.store_only"
    client = client_for(alice)
    # Store-level only: every key is visible, and delete is refused store-wide.
    assert client.get(f"{API}/default/records/user-{bob.pk}/thread-0").status_code == 200
    body = client.get(f"{API}/default/records/", {"limit": 100}).json()
    assert len(body["keys"]) == 7
    response = client.delete(f"{API}/default/records/user-{alice.pk}/thread-0")
    assert response.status_code == 403


def test_browser_hides_lists_and_refuses_other_keys(seeded):
    alice, bob = seeded
    client = client_for(alice)
    store = sync_storages["default"]
    page = client.get(f"{BROWSER}/default/")
    assert page.status_code == 200
    html = page.content.decode().replace("<wbr>", "")  # the page's break points in keys
    assert f"user-{alice.pk}/thread-0" in html
    assert f"user-{bob.pk}/" not in html and "shared/config" not in html
    theirs = f"user-{bob.pk}/thread-0"
    assert client.get(f"{BROWSER}/default/record/", {"key": theirs}).status_code == 404
    assert client.get(f"{BROWSER}/default/record/edit/", {"key": theirs}).status_code == 404
    # Writing through the add form under someone else's prefix, or deleting: 403.
    response = client.post(
        f"{BROWSER}/default/record/edit/", {"key": theirs, "value": '{"stolen": true}'}
    )
    assert response.status_code == 403
    response = client.post(
        f"{BROWSER}/default/delete/",
        {"key": [f"user-{alice.pk}/thread-0", theirs], "confirm": "yes"},
    )
    assert response.status_code == 403
    assert store.get(theirs) == {"owner": "bob", "i": 0}
    assert store.exists(f"user-{alice.pk}/thread-0")  # a refused bulk delete deletes none
    mine = f"user-{alice.pk}/thread-1"
    assert client.get(f"{BROWSER}/default/record/", {"key": mine}).status_code == 200
    response = client.post(f"{BROWSER}/default/delete/", {"key": [mine], "confirm": "yes"})
    assert response.status_code == 302 and not store.exists(mine)


def test_browser_search_hides_other_hits(users):
    alice, bob = users
    store = sync_storages["searching"]
    store.set(f"user-{alice.pk}/a", {"t": 1})
    store.set(f"user-{bob.pk}/b", {"t": 2})
    page = client_for(alice).get(
        f"{BROWSER}/searching/search/", {"embedding": "[1, 0]", "limit": 10}
    )
    assert page.status_code == 200
    html = page.content.decode().replace("<wbr>", "")  # the page's break points in keys
    assert f"user-{alice.pk}/a" in html and f"user-{bob.pk}/b" not in html
