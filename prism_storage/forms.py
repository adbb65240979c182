"""Form fields and forms shared by the ``Record`` admin and the store browser."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .codec import encode_value, validate_key
from .exceptions import InvalidKeyError, InvalidValueError

__all__ = [
    "MAX_SEARCH_LIMIT",
    "OptionalJSONField",
    "PrettyJSONField",
    "RecordValueForm",
    "SearchForm",
    "clean_record_key",
    "pretty_json",
]

MAX_SEARCH_LIMIT = 100


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


class PrettyJSONField(forms.JSONField):
    """A JSON textarea shown indented, accepting only values our stores accept (a dict of
    JSON data: no NaN, no NUL, not too deep)."""

    widget = forms.Textarea(
        attrs={"rows": 24, "cols": 100, "class": "vLargeTextField", "spellcheck": "false"}
    )
    # ``{}`` is a valid value, not a missing one.
    empty_values = [None, ""]

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return pretty_json(value)

    def validate(self, value: Any) -> None:
        super().validate(value)
        try:
            encode_value(value)
        except InvalidValueError as exc:
            raise ValidationError(str(exc), code="invalid_value") from None


def clean_record_key(key: str) -> str:
    try:
        return validate_key(key)
    except InvalidKeyError as exc:
        raise ValidationError(str(exc), code="invalid_key") from None


class RecordValueForm(forms.Form):
    """A record of any store: its key (fixed once it exists) and its value, with the
    version it was read at (stores that keep versions), so that saving can tell whether
    the record changed meanwhile."""

    key = forms.CharField(max_length=512, strip=False)
    value = PrettyJSONField()
    version = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, adding: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not adding:
            self.fields["key"].disabled = True

    def clean_key(self) -> str:
        return clean_record_key(self.cleaned_data["key"])


class OptionalJSONField(forms.JSONField):
    """A JSON box that is empty when there is no value (Django's shows ``null``, which a
    user would have to delete before typing)."""

    def prepare_value(self, value: Any) -> Any:
        if value is None:
            return ""
        return super().prepare_value(value)


class SearchForm(forms.Form):
    embedding = OptionalJSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80, "spellcheck": "false"}),
        help_text="A JSON list of numbers.",
    )
    text = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"class": "vLargeTextField prism-wide", "size": 80}),
        help_text="Text to embed (stores with an embedder).",
    )
    limit = forms.IntegerField(min_value=1, max_value=MAX_SEARCH_LIMIT, initial=5)
    filter = OptionalJSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 80, "spellcheck": "false"}),
        help_text="Optional JSON object.",
    )

    def __init__(self, *args: Any, text_search: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not text_search:
            del self.fields["text"]

    def clean_embedding(self) -> list[float] | None:
        embedding = self.cleaned_data.get("embedding")
        if embedding is None:
            return None
        if (
            type(embedding) is not list
            or not embedding
            or not all(type(x) in (int, float) for x in embedding)
        ):
            raise ValidationError("Give a non-empty JSON list of numbers.")
        return [float(x) for x in embedding]

    def clean_filter(self) -> dict[str, Any] | None:
        value = self.cleaned_data.get("filter")
        if value is not None and type(value) is not dict:
            raise ValidationError("The filter must be a JSON object.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if bool(data.get("embedding")) == bool(data.get("text")):
            raise ValidationError(
                "Give an embedding or a text, not both."
                if data.get("text")
                else "Give an embedding."
            )
        return data
