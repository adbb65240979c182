from __future__ import annotations

from django.db import models


class Record(models.Model):
    """One record of an ``orm`` store: a JSON value under a key, within a namespace."""

    namespace = models.CharField(max_length=255)
    key = models.CharField(max_length=512)
    value = models.JSONField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    #: Changes on every write (``new_version()``, written by the store). The database
    #: default only serves rows that code predating the column still inserts.
    version = models.CharField(max_length=32, db_default="0")

    class Meta:
        verbose_name = "agent record"
        verbose_name_plural = "agent records"
        constraints = [
            models.UniqueConstraint(fields=["namespace", "key"], name="prism_record_ns_key"),
        ]
        indexes = [
            models.Index(fields=["namespace", "expires_at"], name="prism_record_ns_expiry"),
        ]
        ordering = ["namespace", "key"]

    def __str__(self) -> str:
        return f"{self.namespace}:{self.key}"


class Store(Record):
    """The store browser's entry in the admin's app list (“Stores”), nothing more.

    The admin lists only registered models, and the browser shows every configured store,
    not rows of a table. A proxy model gives it an entry on the admin index without a table
    or permissions of its own: access follows the ``Record`` permissions, as everywhere
    in the browser.
    """

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = "store"
        verbose_name_plural = "stores"
