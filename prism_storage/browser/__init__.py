"""The admin's store browser: every configured store, through the backend API only.

:class:`StoreBrowser` adds its pages to the ``Record`` admin (:mod:`prism_storage.admin`
calls its ``get_urls()``). One module per concern: :mod:`.pages` (the views and their
URLs), :mod:`.editing` (the edit form's read and its version-checked save),
:mod:`.health` (the live pings of the store list) and :mod:`.failures` (what a page
says when a store fails). Nothing here imports :mod:`prism_storage.admin`.
"""

from __future__ import annotations

from .pages import StoreBrowser

__all__ = ["StoreBrowser"]
