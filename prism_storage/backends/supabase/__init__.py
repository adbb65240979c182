"""``supabase``: one row per key in a Supabase table, through supabase-py's async client.

:mod:`.backend` is the store; :mod:`.client` builds the client of each event loop and
turns HTTP error answers into exceptions, which :mod:`.errors` maps to typed errors;
:mod:`.queries` builds the parts of PostgREST queries and :mod:`.rows` reads the rows
answered; :mod:`.functions` calls the table's SQL functions (the versioned and atomic
writes); :mod:`.legacy` serves tables made by an earlier version's SQL; :mod:`.options`
checks the options; :mod:`.sql` holds the SQL of the table and its functions
(``manage.py prism_supabase_sql``).
"""

from .backend import SupabaseRequestError, SupabaseStorageBackend
from .sql import table_sql

__all__ = ["SupabaseRequestError", "SupabaseStorageBackend", "table_sql"]
