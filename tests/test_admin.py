"""The admin: the Record model pages and the store browser, with Django's test client."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.template.defaultfilters import filesizeformat
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from prism_storage import sync_storages
from prism_storage.codec import encoded_size
from prism_storage.models import Record
from prism_storage.testing.conformance import HOSTILE_KEYS
from prism_storage.views import supports_text_search
from tests.support.memory_variants import memory_variant
from tests.support.stores import STORE_KINDS

pytestmark = pytest.mark.django_db

KINDS = sorted(STORE_KINDS)


def url(name: str, alias: str | None = None, **query) -> str:
    from urllib.parse import urlencode

    path = reverse(f"admin:{name}", kwargs={"alias": alias} if alias else None)
    return f"{path}?{urlencode(query, doseq=True)}" if query else path


def sample_value(store, i: int = 0) -> dict:
    value = {"messages": [{"role": "user", "content": f"hello {i}"}], "n": i}
    dimensions = getattr(store, "dimensions", None)
    if store.supports_search and type(dimensions) is int:
        value["embedding"] = [float(i == d) + 0.01 for d in range(dimensions)]
    return value


def staff(name: str, *codenames: str, superuser: bool = False) -> Client:
    user = User.objects.create_user(name, password="pw", is_staff=True, is_superuser=superuser)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="prism_storage", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client


def version_of(store, key: str) -> str:
    """What the edit form carries as the record's version ("" where there is none)."""
    if not store.store.supports_versions:
        return ""
    record = store.get_record(key)
    return "" if record is None else record.version


@pytest.fixture
def root():
    return staff("root", superuser=True)


@pytest.fixture
def configure(settings, store_config):
    def apply(kind: str = "file", **extra: dict) -> None:
        settings.PRISM_STORAGE = {
            "default": {"BACKEND": "orm"},
            "main": store_config(kind, "main"),
            **extra,
        }

    return apply


def make_record(key: str, value: dict, namespace: str = "ns1", expires_in: float | None = None):
    now = timezone.now()
    return Record.objects.create(
        namespace=namespace,
        key=key,
        value=value,
        created_at=now,
        updated_at=now,
        expires_at=None if expires_in is None else now + timedelta(seconds=expires_in),
    )


# ------------------------------------------------------------------ the Record model


def test_record_changelist_search_and_filters(root):
    make_record("agent/1", {"messages": ["hi"]})
    make_record("agent/2", {"x": "y" * 3000}, namespace="ns2", expires_in=3600)
    make_record("old", {"x": 1}, namespace="ns2", expires_in=-60)
    changelist = reverse("admin:prism_storage_record_changelist")
    response = root.get(changelist)
    assert response.status_code == 200
    content = response.content.decode()
    for text in ("agent/1", "agent/2", "ns2", "2.9\xa0KB", url("prism_storage_stores")):
        assert text in content
    keys = lambda r: sorted(o.key for o in r.context["cl"].result_list)  # noqa: E731
    assert keys(root.get(changelist, {"q": "agent"})) == ["agent/1", "agent/2"]
    assert keys(root.get(changelist, {"namespace": "ns2"})) == ["agent/2", "old"]
    assert keys(root.get(changelist, {"expiry": "never"})) == ["agent/1"]
    assert keys(root.get(changelist, {"expiry": "live"})) == ["agent/2"]
    assert keys(root.get(changelist, {"expiry": "expired"})) == ["old"]


def test_the_admin_index_lists_the_store_browser_for_who_may_view_records():
    entry = reverse("admin:prism_storage_store_changelist")
    for client in (staff("root", superuser=True), staff("viewer", "view_record")):
        for page in (reverse("admin:index"), reverse("admin:app_list", args=["prism_storage"])):
            response = client.get(page)
            models = {
                m["object_name"]: m
                for app in response.context["app_list"]
                if app["app_label"] == "prism_storage"
                for m in app["models"]
            }
            assert models["Store"]["name"] == "Stores"
            assert models["Store"]["admin_url"] == entry
            assert models["Store"]["add_url"] is None
            assert f'href="{entry}"' in response.content.decode()
        response = client.get(entry)
        assert response.status_code == 302 and response["Location"] == url("prism_storage_stores")
    # Staff without a record permission: no entry, and the entry's page is refused.
    nobody = staff("nobody")
    response = nobody.get(reverse("admin:index"))
    assert entry not in response.content.decode()
    assert nobody.get(entry).status_code == 403


def test_a_record_has_one_size_in_the_record_list_and_in_the_store_browser(settings, root):
    settings.PRISM_STORAGE = {"default": {"BACKEND": "orm", "OPTIONS": {"namespace": "sz"}}}
    value = {"text": "é" * 700 + " spaced, out: " * 40, "n": [1, 2, 3]}
    sync_storages["default"].set("sized", value)
    expected = encoded_size(value)
    assert expected == len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    changelist = root.get(reverse("admin:prism_storage_record_changelist"))
    record = Record.objects.get(namespace="sz", key="sized")
    model_size = changelist.context["cl"].model_admin.size(record)
    browser = root.get(url("prism_storage_store_records", "default"))
    (row,) = browser.context["rows"]
    assert row["size"] == expected
    assert model_size == filesizeformat(expected)
    assert f"<td>{model_size}</td>" in browser.content.decode()


def test_record_change_form_validates_json_before_saving(root):
    record = make_record("agent/1", {"messages": [{"role": "user", "content": "Hi"}]})
    change = reverse("admin:prism_storage_record_change", args=[record.pk])
    response = root.get(change)
    assert "{\n  &quot;messages&quot;: [\n    {" in response.content.decode()
    form = {"namespace": "ns1", "key": "agent/1", "expires_at_0": "", "expires_at_1": ""}
    for bad, message in [
        ('{"a": ', "Enter a valid JSON"),
        ("[1, 2]", "must be a dict"),
        ('{"a": NaN}', "not a JSON number"),
        ('{"a": "\\u0000"}', "NUL"),
    ]:
        response = root.post(change, {**form, "value": bad})
        assert response.status_code == 200, bad
        assert message in response.content.decode(), bad
    response = root.post(change, {**form, "key": "bad\nkey", "value": "{}"})
    assert "control characters" in response.content.decode()
    record.refresh_from_db()
    assert record.value == {"messages": [{"role": "user", "content": "Hi"}]}
    assert record.key == "agent/1"
    response = root.post(change, {**form, "value": '{"messages": []}'})
    assert response.status_code == 302
    record.refresh_from_db()
    assert record.value == {"messages": []}
    assert record.updated_at > record.created_at


def test_record_change_form_makes_a_new_version(root):
    record = make_record("agent/1", {"n": 1})
    before = record.version
    change = reverse("admin:prism_storage_record_change", args=[record.pk])
    form = {"namespace": "ns1", "key": "agent/1", "expires_at_0": "", "expires_at_1": ""}
    response = root.post(change, {**form, "value": '{"n": 2}'})
    assert response.status_code == 302
    record.refresh_from_db()
    assert record.value == {"n": 2} and record.version != before


def test_record_add_sets_timestamps(root):
    add = reverse("admin:prism_storage_record_add")
    response = root.post(
        add,
        {
            "namespace": "ns",
            "key": " spaced key ",
            "value": '{"a": 1}',
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert response.status_code == 302
    record = Record.objects.get(namespace="ns")
    assert record.key == " spaced key "
    assert record.created_at == record.updated_at is not None


def test_view_only_user_sees_pretty_json_read_only():
    record = make_record("agent/1", {"a": [1, 2]})
    client = staff("viewer", "view_record")
    response = client.get(reverse("admin:prism_storage_record_change", args=[record.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert '<pre class="prism-json">{\n  &quot;a&quot;: [\n' in content
    assert "<textarea" not in content


# ----------------------------------------------------------------- the store browser


def test_store_list_shows_backend_and_health(configure, root, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    configure(
        "file",
        down={"BACKEND": "file", "OPTIONS": {"data_dir": str(blocker / "x")}},
        broken={"BACKEND": "file", "OPTIONS": {"nope": 1}},
    )
    response = root.get(url("prism_storage_stores"))
    assert response.status_code == 200
    rows = {r["alias"]: r for r in response.context["rows"]}
    assert list(rows) == ["default", "main", "down", "broken"]
    assert rows["default"]["backend"] == "orm" and rows["default"]["ok"]
    assert rows["main"]["backend"] == "file" and rows["main"]["health"].startswith("OK (")
    assert rows["main"]["health"].endswith(" ms)")
    assert not rows["down"]["ok"] and "BackendUnavailableError" in rows["down"]["health"]
    assert not rows["broken"]["ok"] and "not configured correctly" in rows["broken"]["health"]
    assert url("prism_storage_store_records", "main") in response.content.decode()


def test_a_store_page_shows_capabilities_and_health(configure, root):
    secret = "page-secret-pw-1234"
    configure(
        "file",
        # Nothing listens on port 1: the ping fails, and the page must not show the password.
        down={
            "BACKEND": "redis",
            "OPTIONS": {"url": f"redis://agent:{secret}@127.0.0.1:1/0", "timeout": 2},
        },
    )
    response = root.get(url("prism_storage_store_records", "main"))
    assert response.status_code == 200
    store = sync_storages["main"].store
    shown = dict(response.context["capabilities"])
    assert shown == store.capabilities and "text_search" in shown
    content = response.content.decode()
    for name, on in store.capabilities.items():
        assert f'data-capability="{name}" data-supported="{str(on).lower()}"' in content
    health = response.context["health"]
    assert health.ok and health.latency_ms is not None
    assert re.search(r'id="prism-health" class="prism-ok">OK \(\d+\.\d ms\)<', content)

    response = root.get(url("prism_storage_store_records", "down"))
    assert response.status_code == 200
    health = response.context["health"]
    assert not health.ok and "BackendUnavailableError" in health.label
    content = response.content.decode()
    assert 'id="prism-health" class="prism-down"' in content
    assert secret not in content


@pytest.mark.parametrize("kind", KINDS)
def test_store_records_are_paged_by_cursor_and_searchable(kind, configure, root):
    configure(kind)
    store = sync_storages["main"]
    store.set_many({f"user/{i:03}": sample_value(store.store, i) for i in range(60)})
    store.set("bot/1", sample_value(store.store))
    seen: list[str] = []
    page_url = url("prism_storage_store_records", "main", q="user/")
    pages = 0
    while page_url:
        response = root.get(page_url)
        assert response.status_code == 200
        rows = response.context["rows"]
        assert len(rows) <= 50
        seen += [r["key"] for r in rows]
        page_url = response.context["next_url"]
        pages += 1
    assert sorted(seen) == [f"user/{i:03}" for i in range(60)]
    assert pages >= 2
    # Without a prefix every key is listed (in the backend's order: Redis SCAN's is the
    # server's hash order, so bot/1 may be on any page).
    everything: list[str] = []
    page_url = url("prism_storage_store_records", "main")
    while page_url:
        response = root.get(page_url)
        assert "Delete selected records" in response.content.decode()
        everything += [r["key"] for r in response.context["rows"]]
        page_url = response.context["next_url"]
    assert sorted(everything) == ["bot/1"] + [f"user/{i:03}" for i in range(60)]


@pytest.mark.parametrize("kind", KINDS)
def test_record_detail_edit_and_validation(kind, configure, root):
    configure(kind)
    store = sync_storages["main"]
    keys = [k for k in HOSTILE_KEYS if len(k) < 100]
    for i, key in enumerate(keys):
        store.set(key, sample_value(store.store, i))
    for i, key in enumerate(keys):
        response = root.get(url("prism_storage_store_record", "main", key=key))
        assert response.status_code == 200, key
        assert json.loads(response.context["value_json"]) == sample_value(store.store, i)
        assert response.context["value_json"].startswith('{\n  "')  # indented
    assert root.get(url("prism_storage_store_record", "main", key="absent")).status_code == 404
    key = "user/42/thread/7"
    edit = url("prism_storage_store_record_edit", "main", key=key)
    response = root.get(edit)
    assert json.loads(response.context["form"]["value"].value()) == sample_value(
        store.store, keys.index(key)
    )
    original = store.get(key)
    for bad, message in [
        ("{oops", "Enter a valid JSON"),
        ("[1]", "must be a dict"),
        ('{"a": Infinity}', "not a JSON number"),
    ]:
        response = root.post(edit, {"value": bad})
        assert response.status_code == 200 and message in response.content.decode(), bad
    assert store.get(key) == original
    new_value = {**sample_value(store.store, 99), "edited": True}
    version = root.get(edit).context["form"]["version"].value()
    response = root.post(
        edit, {"value": json.dumps(new_value), "key": "ignored", "version": version}
    )
    assert response.status_code == 302
    assert response["Location"] == url("prism_storage_store_record", "main", key=key)
    assert store.get(key) == new_value
    assert store.get("ignored") is None
    add = url("prism_storage_store_record_edit", "main")
    response = root.post(add, {"key": "new key", "value": json.dumps(new_value)})
    assert response.status_code == 302 and store.get("new key") == new_value
    response = root.post(add, {"key": "new key", "value": "{}"})
    assert "exists already" in response.content.decode() and store.get("new key") == new_value


@pytest.mark.parametrize("kind", KINDS)
def test_delete_with_confirmation_and_bulk_delete(kind, configure, root):
    configure(kind)
    store = sync_storages["main"]
    for i, key in enumerate(["a", "b/1", "c d", "e%"]):
        store.set(key, sample_value(store.store, i))
    delete = url("prism_storage_store_delete", "main")
    response = root.get(url("prism_storage_store_delete", "main", key="b/1"))
    assert response.status_code == 200 and response.context["keys"] == ["b/1"]
    assert store.exists("b/1")
    response = root.post(delete, {"key": "b/1", "confirm": "yes"})
    assert response.status_code == 302 and not store.exists("b/1")
    response = root.post(delete, {"key": ["a", "c d"]})  # from the list's checkboxes
    assert response.status_code == 200 and response.context["keys"] == ["a", "c d"]
    assert store.exists("a") and store.exists("c d")
    response = root.post(delete, {"key": ["a", "c d"], "confirm": "yes"}, follow=True)
    assert "Deleted 2 record(s)" in response.content.decode()
    assert sorted(store.iter_keys()) == ["e%"]
    response = root.post(delete, {"confirm": "yes"})
    assert response.status_code == 302 and sorted(store.iter_keys()) == ["e%"]


@pytest.mark.parametrize("kind", KINDS)
def test_similarity_search_page(kind, configure, root):
    configure(kind)
    store = sync_storages["main"]
    response = root.get(url("prism_storage_store_search", "main"))
    assert response.status_code == 200
    if not store.store.supports_search:
        assert "does not support similarity search" in response.content.decode()
        return
    # The form starts empty: no "null" to delete before typing.
    content = response.content.decode()
    boxes = dict(re.findall(r'<textarea name="(\w+)"[^>]*>(.*?)</textarea>', content, re.S))
    assert set(boxes) == {"embedding", "filter"}
    assert all(text.strip() == "" for text in boxes.values()), boxes
    if supports_text_search(store.store):
        assert re.search(r'<input type="text" name="text"[^>]*class="[^"]*prism-wide', content)
        assert 'value="' not in re.search(r'<input type="text" name="text"[^>]*>', content)[0]
    for i in range(3):
        store.set(f"doc-{i}", sample_value(store.store, i))
    embedding = sample_value(store.store, 2)["embedding"]
    response = root.get(
        url("prism_storage_store_search", "main", embedding=json.dumps(embedding), limit=2)
    )
    results = response.context["results"]
    assert len(results) == 2 and results[0]["key"] == "doc-2"
    response = root.get(url("prism_storage_store_search", "main", embedding='"x"', limit=2))
    assert "list of numbers" in response.content.decode()
    if supports_text_search(store.store):
        store.set("note", {"text": "the quarterly report"})
        response = root.get(
            url("prism_storage_store_search", "main", text="the quarterly report", limit=1)
        )
        assert [r["key"] for r in response.context["results"]] == ["note"]


def test_store_that_cannot_list_says_so(configure, root):
    configure(
        "file",
        minimal={
            "BACKEND": "tests.support.minimal_backend.MinimalBackend",
            "OPTIONS": {"name": "admin-unlisted"},
        },
    )
    sync_storages["minimal"].set("known", {"v": 1})
    response = root.get(url("prism_storage_store_records", "minimal"))
    assert response.status_code == 200
    assert "cannot list its keys" in response.content.decode()
    response = root.get(url("prism_storage_store_record", "minimal", key="known"))
    assert response.status_code == 200 and '"v": 1' in response.context["value_json"]


# ------------------------------------------------------------------------ access


def test_browser_permissions(configure, settings):
    configure("file")
    store = sync_storages["main"]
    store.set("k", {"v": 1})
    pages = {
        "stores": url("prism_storage_stores"),
        "records": url("prism_storage_store_records", "main"),
        "record": url("prism_storage_store_record", "main", key="k"),
        "edit": url("prism_storage_store_record_edit", "main", key="k"),
        "delete": url("prism_storage_store_delete", "main", key="k"),
    }
    anonymous = Client()
    assert anonymous.get(pages["stores"]).status_code == 302  # to the login page
    non_staff = Client()
    non_staff.force_login(User.objects.create_user("visitor", password="pw"))
    assert non_staff.get(pages["records"])["Location"].startswith("/admin/login/")
    expected = {
        "noperms": {"stores": 403, "records": 403, "record": 403, "edit": 403, "delete": 403},
        "viewer": {"stores": 200, "records": 200, "record": 200, "edit": 403, "delete": 403},
        "changer": {"stores": 200, "records": 200, "record": 200, "edit": 200, "delete": 403},
        "deleter": {"stores": 200, "records": 200, "record": 200, "edit": 403, "delete": 200},
    }
    perms = {
        "noperms": (),
        "viewer": ("view_record",),
        "changer": ("change_record",),
        "deleter": ("view_record", "delete_record"),
    }
    for who, statuses in expected.items():
        client = staff(who, *perms[who])
        for page, status in statuses.items():
            assert client.get(pages[page]).status_code == status, (who, page)
        response = client.post(
            url("prism_storage_store_delete", "main"), {"key": "k", "confirm": "yes"}
        )
        assert response.status_code == (302 if who == "deleter" else 403), who
        if who != "deleter":
            response = client.post(
                pages["edit"], {"value": '{"v": 2}', "version": version_of(store, "k")}
            )
            assert response.status_code == (302 if who == "changer" else 403)
    assert not store.exists("k")
    # The per-user hook hides stores (404) and takes operations away (403).
    settings.PRISM_STORAGE_ACCESS = lambda user, alias, op: alias != "main" or op == "view"
    store.set("k", {"v": 1})
    root = staff("root", superuser=True)
    response = root.get(pages["stores"])
    assert [r["alias"] for r in response.context["rows"]] == ["default", "main"]
    assert root.get(pages["edit"]).status_code == 403
    assert "Delete selected" not in root.get(pages["records"]).content.decode()
    settings.PRISM_STORAGE_ACCESS = lambda user, alias, op: alias != "main"
    assert root.get(pages["records"]).status_code == 404
    assert [r["alias"] for r in root.get(pages["stores"]).context["rows"]] == ["default"]


# ----------------------------------------------------------- versions in the browser


@pytest.fixture
def versioned(configure):
    """``main`` keeps versions and writes conditionally; ``plain`` does neither."""
    run = uuid.uuid4().hex[:8]
    configure(
        "memory",
        main=memory_variant("Gated", f"admin-main-{run}"),
        plain=memory_variant("Unversioned", f"admin-plain-{run}"),
    )
    return sync_storages["main"]


def test_edit_form_carries_the_version_and_detail_shows_it(versioned, root):
    versioned.set("k", {"n": 1})
    record = versioned.get_record("k")
    response = root.get(url("prism_storage_store_record_edit", "main", key="k"))
    assert response.context["form"]["version"].value() == record.version
    assert f'name="version" value="{record.version}"' in response.content.decode()
    response = root.get(url("prism_storage_store_record", "main", key="k"))
    assert response.context["record"] == record
    assert record.version in response.content.decode()


def test_saving_over_a_record_changed_meanwhile_is_a_conflict(versioned, root):
    versioned.set("k", {"n": 1})
    edit = url("prism_storage_store_record_edit", "main", key="k")
    version = root.get(edit).context["form"]["version"].value()
    versioned.set("k", {"n": 2, "by": "someone else"})
    response = root.post(edit, {"value": '{"n": 3}', "version": version})
    assert response.status_code == 200
    page = response.content.decode()
    assert "changed by someone else" in page and "nothing was saved" in page
    assert json.loads(response.context["form"]["value"].value()) == {"n": 3}  # kept
    assert versioned.get("k") == {"n": 2, "by": "someone else"}
    # A form without a version (not one the browser made) cannot overwrite either.
    response = root.post(edit, {"value": '{"n": 3}'})
    assert response.status_code == 200 and versioned.get("k") == {"n": 2, "by": "someone else"}


def test_saving_over_a_record_deleted_meanwhile_recreates_nothing(versioned, root):
    versioned.set("k", {"n": 1})
    edit = url("prism_storage_store_record_edit", "main", key="k")
    version = root.get(edit).context["form"]["version"].value()
    versioned.delete("k")
    response = root.post(edit, {"value": '{"n": 3}', "version": version})
    assert response.status_code == 200 and "was deleted" in response.content.decode()
    assert versioned.get_record("k") is None


def test_adding_a_key_created_meanwhile_overwrites_nothing(versioned, root):
    add = url("prism_storage_store_record_edit", "main")
    form = root.get(add).context["form"]
    assert form["version"].value() == ""
    versioned.set("new", {"first": True})
    response = root.post(add, {"key": "new", "value": '{"second": true}', "version": ""})
    assert "exists already" in response.content.decode()
    assert versioned.get("new") == {"first": True}


def test_stores_without_versions_edit_as_before(versioned, root):
    plain = sync_storages["plain"]
    plain.set("k", {"n": 1})
    edit = url("prism_storage_store_record_edit", "plain", key="k")
    response = root.get(edit)
    assert response.context["form"]["version"].value() == ""
    assert root.get(url("prism_storage_store_record", "plain", key="k")).context["record"] is None
    response = root.post(edit, {"value": '{"n": 2}', "version": ""})
    assert response.status_code == 302 and plain.get("k") == {"n": 2}


def test_keys_get_line_break_opportunities_between_their_parts_and_stay_escaped():
    from prism_storage.templatetags.prism_admin import key_breaks

    assert key_breaks("agent/42/thread:7") == "agent/<wbr>42/<wbr>thread:<wbr>7"
    assert key_breaks("a&b<i>") == "a&amp;<wbr>b&lt;i&gt;"
    assert key_breaks('"quoted key"') == "&quot;quoted key&quot;"
    assert key_breaks("x" * 5) == "xxxxx"
