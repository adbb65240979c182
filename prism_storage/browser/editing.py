"""Reading a record into the store browser's edit form, and saving the form back.

Where the store keeps versions, the form carries the version it was read at, and the
save writes only at that version: a record changed or deleted meanwhile is not
overwritten, and the user is told what happened instead.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404

from ..exceptions import VersionConflictError
from ..forms import RecordValueForm
from ..sync import SyncStore

__all__ = ["conflict_message", "read_for_edit", "save_record"]


def read_for_edit(sync: SyncStore, key: str) -> dict[str, Any]:
    """The record's value, and its version and :class:`Record` where the store keeps
    versions."""
    if sync.store.supports_versions:
        found = sync.get_record(key)
        if found is None:
            raise Http404("No record has this key.")
        return {"value": found.value, "version": found.version, "record": found}
    value = sync.get(key)
    if value is None:
        raise Http404("No record has this key.")
    return {"value": value}


def save_record(sync: SyncStore, form: RecordValueForm, adding: bool) -> None:
    """Write the form's record; a conflict becomes a form error and writes nothing.

    Where the store writes conditionally, an added record is created only if absent
    and an edited one written only at the version the form was read at, in one write
    of the store. Elsewhere, as before versions: a check, then an unconditional write.
    """
    key, value = form.cleaned_data["key"], form.cleaned_data["value"]
    exists_message = "A record with this key exists already."
    if not sync.store.supports_conditional_writes:
        if adding and sync.exists(key):
            form.add_error("key", exists_message)
        else:
            sync.set(key, value)
        return
    version = form.cleaned_data["version"] or None
    try:
        if adding:
            sync.put(key, value, if_absent=True)
        elif version is None:
            raise VersionConflictError("The form carries no version.", None)
        else:
            sync.put(key, value, if_version=version)
    except VersionConflictError as exc:
        if adding:
            form.add_error("key", exists_message)
        else:
            form.add_error(None, conflict_message(exc))


def conflict_message(exc: VersionConflictError) -> str:
    """What the form says when the record changed after it was read."""
    what = "was deleted" if exc.current_version is None else "was changed by someone else"
    return (
        f"This record {what} after you opened it, so nothing was saved. "
        "Copy your changes, reload the record and apply them again."
    )
