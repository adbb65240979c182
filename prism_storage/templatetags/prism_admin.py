"""Template filters of the admin's store browser."""

from __future__ import annotations

import re

from django import template
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

register = template.Library()

# After these, a line may break inside a key: they separate a key's parts
# ("agent/42/thread:7"), so a long key wraps between parts rather than mid-word.
_KEY_SEPARATORS = re.compile(r"([/:.\-_|#@=&?,;])")
_WBR = SafeString("<wbr>")


@register.filter
def key_breaks(key: object) -> SafeString:
    """``key`` escaped, with a line-break opportunity (``<wbr>``) after each separator.

    The text and what is copied from the page stay the key itself: ``<wbr>`` adds no
    character.
    """
    # format_html_join escapes each part; splitting first keeps an entity such as "&amp;"
    # whole.
    parts = _KEY_SEPARATORS.split(str(key))
    return format_html_join(
        "", "{}{}", ((part, _WBR if _KEY_SEPARATORS.fullmatch(part) else "") for part in parts)
    )
