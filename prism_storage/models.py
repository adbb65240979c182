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
