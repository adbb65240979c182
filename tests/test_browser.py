"""The admin store browser in a real headless Chromium against a live server.

Debian's ``chromium`` package is driven through Playwright's Python API; no browser is ever
downloaded. Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from prism_storage import sync_storages
from tests.support.vector import DIMENSIONS

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


@contextmanager
def chromium_page(base_url: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 900}, base_url=base_url
            )
            page = context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


@pytest.fixture
def page(live_server, seeded):
    with chromium_page(live_server.url) as page:
        yield page


def log_in(page, next_url: str) -> None:
    page.goto(f"/admin/login/?next={next_url}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")


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
    assert stores.locator("tr", has_text="files").locator(".prism-ok").inner_text().startswith("OK")
    assert (
        stores.locator("tr", has_text="default").locator(".prism-ok").inner_text().startswith("OK")
    )
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


# ------------------------------------------------------------- a tour of every page

#: A key with no separator at all: it can only wrap inside itself, and must, rather than
#: widen the page.
LONG_KEY = "x" * 150
#: Words that must never be split across lines in a preview.
WORDY = " ".join(["conversation", "summarisation", "preferences", "Lyon"] * 12)

#: Finds words of ``selector``'s elements that a line break splits, except those wider
#: than their element (which can only be shown by breaking them).
SPLIT_WORDS_JS = """(selector) => {
  const split = [];
  for (const element of document.querySelectorAll(selector)) {
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.textContent.matchAll(/[^\\s]+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const rects = [...range.getClientRects()].filter((r) => r.width > 0);
        const lines = new Set(rects.map((r) => Math.round(r.top))).size;
        const width = rects.reduce((sum, r) => sum + r.width, 0);
        if (lines > 1 && width <= element.clientWidth) split.push(match[0]);
      }
    }
  }
  return split;
}"""


@pytest.fixture
def tour_page(live_server, settings, tmp_path):
    """Stores for every page of the admin: files, the orm store and a searchable vector
    store (embedded Qdrant, text search through a deterministic embedder)."""
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "orm", "OPTIONS": {"namespace": "browser-tour"}},
        "files": {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path / "files")}},
        "recall": {
            "BACKEND": "vector",
            "OPTIONS": {
                "provider": "qdrant",
                "path": str(tmp_path / "qdrant"),
                "dimensions": DIMENSIONS,
                "embedder": "tests.support.vector.hash_embedder",
            },
        },
    }
    files = sync_storages["files"]
    files.set("agent/7/conversation/summary", {"summary": WORDY})
    files.set(LONG_KEY, {"note": "a key with no separator"})
    sync_storages["default"].set("memory/alice", {"facts": ["likes tea", "lives in Lyon"]})
    recall = sync_storages["recall"]
    recall.set("note/tea", {"text": "Alice likes tea"})
    recall.set("note/lyon", {"text": "Alice lives in Lyon"})
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    with chromium_page(live_server.url) as page:
        yield page, files.store.capabilities


def test_every_admin_page_in_a_real_browser(tour_page):
    page, files_capabilities = tour_page
    log_in(page, "/admin/")

    # The admin index lists the store browser under the app, as Django users expect.
    module = page.locator("div.app-prism_storage")
    assert module.locator("a", has_text="Stores").get_attribute("href") == (
        "/admin/prism_storage/store/"
    )
    assert module.locator("a", has_text="Agent records").count() == 1
    shot(page, "10-admin-index")

    # Its link opens the list of every store, each with a timed health ping.
    module.locator("a", has_text="Stores").click()
    assert page.url.endswith("/admin/prism_storage/record/stores/")
    stores = page.locator("#prism-stores")
    for alias in ("default", "files", "recall"):
        health = stores.locator("tr", has_text=alias).locator(".prism-ok").inner_text()
        assert health.startswith("OK (") and health.endswith(" ms)"), health
    recall_row = stores.locator("tr", has=page.locator("th", has_text="recall"))
    assert "text_search" in recall_row.inner_text()
    shot(page, "11-store-list")

    # A store's page: capabilities (all of them, text_search included) and health.
    page.click("#prism-stores >> text=files")
    capabilities = page.locator("#prism-capabilities li")
    shown = {
        capabilities.nth(i).get_attribute("data-capability"): capabilities.nth(i).get_attribute(
            "data-supported"
        )
        for i in range(capabilities.count())
    }
    expected = files_capabilities
    assert shown == {name: str(on).lower() for name, on in expected.items()}
    assert "text_search" in shown
    assert page.inner_text("#prism-health").startswith("OK (")
    # Keys and previews wrap between words; the key without separators wraps inside itself
    # instead of widening the page.
    assert page.evaluate(SPLIT_WORDS_JS, ".prism-preview") == []
    assert page.evaluate(SPLIT_WORDS_JS, "#result_list .prism-key") == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    long_key = page.locator("#result_list th.prism-key a", has_text=LONG_KEY[:20])
    assert long_key.evaluate("a => a.getClientRects().length") > 1  # on several lines
    shot(page, "12-store-page")

    # A record's page.
    page.click("text=agent/7/conversation/summary")
    assert page.inner_text("#prism-record-key") == "agent/7/conversation/summary"
    assert json.loads(page.inner_text("#prism-value")) == {"summary": WORDY}
    assert page.evaluate(SPLIT_WORDS_JS, "#prism-value") == []
    shot(page, "13-record-page")

    # The similarity search form starts empty, with a wide text box, and searches by text.
    page.goto("/admin/prism_storage/record/stores/recall/search/")
    assert page.input_value("#id_embedding") == ""
    assert page.input_value("#id_filter") == ""
    assert page.input_value("#id_text") == ""
    form_width = page.locator("#prism-search-form fieldset").bounding_box()["width"]
    assert page.locator("#id_text").bounding_box()["width"] > 0.6 * form_width
    shot(page, "14-search-form")
    page.fill("#id_text", "Alice likes tea")
    page.fill("#id_limit", "1")
    page.click("#prism-search-form input[type=submit]")
    assert page.locator("#prism-results th.prism-key").all_inner_texts() == ["note/tea"]
    assert page.input_value("#id_embedding") == ""
    shot(page, "15-search-results")

    # The Record list (the orm store's model admin) shows the same size as the browser.
    page.goto("/admin/prism_storage/record/stores/default/")
    browser_size = (
        page.locator("#result_list tr", has_text="memory/alice").locator("td").nth(1).inner_text()
    )
    page.goto("/admin/prism_storage/record/")
    row = page.locator("#result_list tr", has_text="memory/alice")
    assert row.locator("td.field-size").inner_text() == browser_size
    assert page.locator("#prism-browse-stores").count() == 1
    shot(page, "16-record-changelist")
