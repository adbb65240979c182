"""The admin store browser in a real headless Chromium against a live server.

Debian's ``chromium`` package is driven through Playwright's Python API; no browser is ever
downloaded. Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from prism_storage import sync_storages

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent: apt-get install -y chromium"
    ),
]


@pytest.fixture
def seeded(settings, tmp_path):
    """Two stores with records, and an admin user (made before the browser starts)."""
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "orm", "OPTIONS": {"namespace": "browser-test"}},
        "files": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path / "files")}},
        # Keeps versions: its edit form detects a record changed meanwhile.
        "versioned": {"BACKEND": "memory", "OPTIONS": {"name": f"browser-{tmp_path.name}"}},
    }
    files, orm = sync_storages["files"], sync_storages["default"]
    for i in range(3):
        files.set(
            f"agent/{i}",
            {"messages": [{"role": "user", "content": f"Hello {i}"}], "state": {"step": i}},
        )
    files.set("user/42/thread 7", {"note": "a key with a slash and a space"})
    orm.set("memory/alice", {"facts": ["likes tea", "lives in Lyon"]})
    sync_storages["versioned"].set("chat/1", {"messages": ["hello"]})
    User.objects.create_superuser("admin", "admin@example.com", "pw")


@pytest.fixture
def page(live_server, seeded):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 900}, base_url=live_server.url
            )
            page = context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


class FileStoreProbe:
    """Reads a store (the file store by default) from a worker thread: Playwright's sync
    API keeps an event loop running in the test's thread, where the sync facade cannot
    run."""

    def __init__(self, alias: str = "files") -> None:
        self.alias = alias

    def __getattr__(self, name):
        def call(*args):
            with ThreadPoolExecutor(1) as pool:
                return pool.submit(
                    lambda: list_or_value(getattr(sync_storages[self.alias], name)(*args))
                ).result()

        return call


def list_or_value(result):
    return sorted(result) if hasattr(result, "__next__") else result


def test_browse_edit_and_delete_in_a_real_browser(page):
    files = FileStoreProbe()
    page.goto("/admin/login/?next=/admin/prism_storage/record/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.click("#prism-browse-stores")

    stores = page.locator("#prism-stores")
    assert stores.locator("tr", has_text="files").locator(".prism-ok").inner_text() == "OK"
    assert stores.locator("tr", has_text="default").locator(".prism-ok").inner_text() == "OK"
    shot(page, "01-stores")

    # A file store: list, open a record whose key has a slash and a space.
    page.click("#prism-stores >> text=files")
    assert page.locator("#result_list th.prism-key").count() == 4
    shot(page, "02-file-store-records")
    page.click("text=user/42/thread 7")
    assert page.inner_text("#prism-record-key") == "user/42/thread 7"
    assert json.loads(page.inner_text("#prism-value")) == {"note": "a key with a slash and a space"}
    shot(page, "03-record")

    # Edit: invalid JSON is refused and nothing is saved; valid JSON is saved.
    page.click("#prism-edit")
    page.fill("#id_value", '{"note": oops}')
    page.click("input[name=_save]")
    assert "Enter a valid JSON" in page.inner_text("#content-main")
    shot(page, "04-edit-invalid")
    assert files.get("user/42/thread 7") == {"note": "a key with a slash and a space"}
    page.fill("#id_value", '{\n  "note": "edited in the browser",\n  "n": 1\n}')
    page.click("input[name=_save]")
    assert "Saved the record" in page.inner_text(".messagelist")
    assert files.get("user/42/thread 7") == {"note": "edited in the browser", "n": 1}

    # Delete through the confirmation page.
    page.click("#prism-delete")
    assert page.inner_text("#prism-delete-keys") == "user/42/thread 7"
    shot(page, "05-delete-confirmation")
    assert files.exists("user/42/thread 7")
    page.click("#prism-confirm-delete")
    assert "Deleted 1 record(s)" in page.inner_text(".messagelist")
    assert not files.exists("user/42/thread 7")

    # Bulk delete of two selected records.
    page.check("input[aria-label='Select agent/0']")
    page.check("input[aria-label='Select agent/1']")
    page.click("#prism-delete-selected")
    page.click("#prism-confirm-delete")
    assert files.iter_keys() == ["agent/2"]
    shot(page, "06-after-bulk-delete")

    # The orm store, through the same pages.
    page.goto("/admin/prism_storage/record/stores/")
    page.click("#prism-stores >> text=default")
    page.click("text=memory/alice")
    assert json.loads(page.inner_text("#prism-value")) == {"facts": ["likes tea", "lives in Lyon"]}
    shot(page, "07-orm-record")


def test_saving_over_a_record_changed_meanwhile_in_a_real_browser(page):
    store = FileStoreProbe("versioned")
    page.goto("/admin/login/?next=/admin/prism_storage/record/stores/versioned/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.click("text=chat/1")
    assert "Version" in page.inner_text("#prism-record-meta")
    page.click("#prism-edit")
    page.fill("#id_value", '{"messages": ["hello", "mine"]}')
    # Another worker writes the record while the form is open.
    store.set("chat/1", {"messages": ["hello", "theirs"]})
    page.click("input[name=_save]")
    assert "changed by someone else" in page.inner_text("#content-main")
    shot(page, "08-edit-conflict")
    assert store.get("chat/1") == {"messages": ["hello", "theirs"]}
    # Reloading the form reads the current value and version; saving then works.
    page.click("text=Cancel")
    page.click("#prism-edit")
    assert json.loads(page.input_value("#id_value")) == {"messages": ["hello", "theirs"]}
    page.fill("#id_value", '{"messages": ["hello", "theirs", "mine"]}')
    page.click("input[name=_save]")
    assert "Saved the record" in page.inner_text(".messagelist")
    assert store.get("chat/1") == {"messages": ["hello", "theirs", "mine"]}
