"""Expiry rules shared by every store: what a ``ttl`` may be, and when ``touch_on_read``
makes sense (see docs/expiry.md)."""

from __future__ import annotations

from ..exceptions import InvalidOptionError, InvalidValueError

__all__ = ["MAX_TTL", "check_touch_on_read", "check_ttl"]

#: Longest expiry ``set(..., ttl=...)`` takes, in seconds (about 100 years): beyond it no
#: backend's timestamps (file times, datetimes, Redis milliseconds) are sure to hold.
MAX_TTL = 100 * 365 * 24 * 3600


def check_ttl(ttl: object) -> float:
    """Validate a TTL in seconds: a positive int or float of at most :data:`MAX_TTL`."""
    if (
        not isinstance(ttl, int | float)
        or isinstance(ttl, bool)
        or not 0 < ttl <= MAX_TTL  # also refuses NaN
    ):
        raise InvalidValueError(
            f"ttl must be a positive number of seconds up to {MAX_TTL}, not {ttl!r}."
        )
    return float(ttl)


def check_touch_on_read(touch_on_read: object, default_ttl: float | None) -> bool:
    """Validate the ``touch_on_read`` option: a bool, and true only with a default ``ttl``
    (a read has no other expiry to slide to)."""
    if type(touch_on_read) is not bool:
        raise InvalidOptionError("touch_on_read must be True or False.")
    if touch_on_read and default_ttl is None:
        raise InvalidOptionError(
            "touch_on_read needs a default ttl: it resets a record's expiry to now + ttl "
            "on every read."
        )
    return touch_on_read
