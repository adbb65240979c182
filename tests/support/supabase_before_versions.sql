-- The table SQL prism-storage shipped before versioned records (kept to test upgrades).
--
-- Paste into the Supabase SQL editor, or save as a migration
-- (supabase/migrations/<timestamp>_prism_storage.sql). `manage.py prism_supabase_sql
-- --table NAME` prints this file for another table name.
--
-- * "key" uses the "C" collation: keys sort and compare by code point, so key listing
--   pages and prefix ranges are exact and case-sensitive. The database default
--   (en_US.UTF-8 on Supabase) ignores case and punctuation at first comparison level,
--   which would put 'agent_x' between 'agents/1' and 'agents/2'.
-- * "expires_at" is null for records that never expire; expired records are never
--   returned; the backend's sweep() deletes them (run it periodically).
-- * Row-level security is enabled and only the service_role may touch the table. The
--   backend needs a service-role (secret) key: anon and publishable keys ship inside
--   browser and mobile apps, so anyone holding one could read and overwrite every
--   agent's conversations and memories. With no policy for anon/authenticated and their
--   privileges revoked, such a key gets "permission denied" instead of data.

create table if not exists public."agents" (
    key text collate "C" primary key,
    data jsonb not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    expires_at timestamptz
);

-- sweep() deletes by expiry; only expiring rows are indexed.
create index if not exists "agents_expires_at_idx"
    on public."agents" (expires_at) where expires_at is not null;

alter table public."agents" enable row level security;

revoke all on table public."agents" from anon, authenticated;
grant select, insert, update, delete on table public."agents" to service_role;

-- Supabase's service_role bypasses row-level security already; the explicit policy keeps
-- the table usable (and the intent documented) if that attribute is ever removed.
drop policy if exists "agents_service_role_all" on public."agents";
create policy "agents_service_role_all" on public."agents"
    as permissive for all to service_role
    using (true) with check (true);
