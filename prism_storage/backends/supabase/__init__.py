"""``supabase``: one row per key in a Supabase table, through supabase-py's async client.

:mod:`.backend` is the store; :mod:`.client` builds the client of each event loop and
turns HTTP error answers into exceptions; :mod:`.queries` builds the parts of PostgREST
queries; :mod:`.sql` holds the SQL of the table and its functions (``manage.py
prism_supabase_sql``).
"""

from .backend import SupabaseRequestError, SupabaseStorageBackend
from .sql import table_sql

__all__ = ["SupabaseRequestError", "SupabaseStorageBackend", "table_sql"]
