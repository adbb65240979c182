-- prism-storage: the table and functions of the "supabase" storage backend.
--
-- Paste into the Supabase SQL editor, or save as a migration
-- (supabase/migrations/<timestamp>_prism_storage.sql). `manage.py prism_supabase_sql
-- --table NAME` prints this file for another table name. It is safe to run again: on a
-- table made by an earlier prism-storage it adds what is missing (the "version" column,
-- the functions) and keeps every row.
--
-- * "key" uses the "C" collation: keys sort and compare by code point, so key listing
--   pages and prefix ranges are exact and case-sensitive. The database default
--   (en_US.UTF-8 on Supabase) ignores case and punctuation at first comparison level,
--   which would put 'agent_x' between 'agents/1' and 'agents/2'.
-- * "version" changes on every write (16 random hex digits the backend makes; rows that
--   predate the column get a random one). Conditional writes compare it.
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
    version text not null default left(md5(random()::text), 16),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    expires_at timestamptz
);

-- Tables created before versioned records: every existing row gets a random version.
alter table public."agents"
    add column if not exists version text not null default left(md5(random()::text), 16);

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

-- The backend's writes. Each is one call (PostgREST RPC, one transaction) and atomic on
-- the server: a single INSERT ... ON CONFLICT statement or a row lock (SELECT ... FOR
-- UPDATE), so concurrent callers in any number of processes never lose a write or an
-- item. "p_now" is the caller's clock (expiry is computed with it); an expired row counts
-- as absent. The functions run as the caller (security invoker): the policy above applies.

-- set / set_many: upsert rows [{key, data, version, expires_at}]; created_at survives.
create or replace function public."agents_prism_set"(p_rows jsonb, p_now timestamptz)
returns integer
language sql
set search_path = ''
as $$
    with written as (
        insert into public."agents" as t (key, data, version, created_at, updated_at, expires_at)
        select r.key, r.data, r.version, p_now, p_now, r.expires_at
        from jsonb_to_recordset(p_rows)
            as r (key text, data jsonb, version text, expires_at timestamptz)
        on conflict (key) do update set
            data = excluded.data,
            version = excluded.version,
            updated_at = excluded.updated_at,
            expires_at = excluded.expires_at,
            created_at = case when t.expires_at <= excluded.updated_at
                then excluded.created_at else t.created_at end
        returning 1
    )
    select count(*)::integer from written;
$$;

-- put: write p_key if it is at p_if_version (or absent, with p_if_absent). Returns
-- written = false and the current version (null: no record) when the condition fails.
create or replace function public."agents_prism_put"(
    p_key text, p_data jsonb, p_version text, p_now timestamptz, p_expires_at timestamptz,
    p_if_version text default null, p_if_absent boolean default false)
returns table (written boolean, row_version text, created boolean)
language plpgsql
set search_path = ''
as $$
declare
    v_current text;
    v_expired boolean;
begin
    loop
        select t.version, coalesce(t.expires_at <= p_now, false) into v_current, v_expired
        from public."agents" as t where t.key = p_key for update;
        if found then
            if v_expired then
                v_current := null;
            end if;
            if (p_if_absent and v_current is not null)
                or (p_if_version is not null and v_current is distinct from p_if_version) then
                return query select false, v_current, false;
                return;
            end if;
            update public."agents" as t set
                data = p_data, version = p_version, updated_at = p_now, expires_at = p_expires_at,
                created_at = case when v_expired then p_now else t.created_at end
            where t.key = p_key;
            return query select true, p_version, v_current is null;
            return;
        end if;
        if p_if_version is not null then
            return query select false, null::text, false;
            return;
        end if;
        insert into public."agents" (key, data, version, created_at, updated_at, expires_at)
        values (p_key, p_data, p_version, p_now, p_now, p_expires_at)
        on conflict (key) do nothing;
        if found then
            return query select true, p_version, true;
            return;
        end if;
        -- Another caller inserted the key in between: look again (it is there to lock now).
    end loop;
end;
$$;

-- remove: delete p_key (only at p_if_version when given). removed = whether a live
-- record was deleted; with p_if_version, removed = false carries the current version.
create or replace function public."agents_prism_remove"(
    p_key text, p_now timestamptz, p_if_version text default null)
returns table (removed boolean, row_version text)
language plpgsql
set search_path = ''
as $$
declare
    v_live boolean;
    v_current text;
begin
    if p_if_version is null then
        delete from public."agents" as t where t.key = p_key
        returning t.expires_at is null or t.expires_at > p_now into v_live;
        return query select coalesce(v_live, false), null::text;
        return;
    end if;
    select case when t.expires_at is null or t.expires_at > p_now then t.version end
    into v_current
    from public."agents" as t where t.key = p_key for update;
    if v_current is distinct from p_if_version then
        return query select false, v_current;
        return;
    end if;
    delete from public."agents" as t where t.key = p_key;
    return query select true, v_current;
end;
$$;

-- append: add the array p_items to the list field p_field in one statement, keeping the
-- latest p_max_items. A new (or expired) record gets p_expires_at; a live one keeps its
-- expiry when p_keep_expiry. A field holding something else than an array (or null) is
-- left alone: list_length is null and field_type names what it holds.
create or replace function public."agents_prism_append"(
    p_key text, p_field text, p_items jsonb, p_version text, p_now timestamptz,
    p_expires_at timestamptz, p_keep_expiry boolean, p_max_items integer default null)
returns table (list_length integer, field_type text)
language plpgsql
set search_path = ''
as $$
declare
    -- The latest $n items (lax mode clamps the range: a shorter list is kept whole).
    v_tail constant jsonpath := '$[last - $n + 1 to last]';
    v_limit constant jsonb := jsonb_build_object('n', p_max_items);
    v_length integer;
    v_type text;
begin
    loop
        insert into public."agents" as t (key, data, version, created_at, updated_at, expires_at)
        values (
            p_key,
            jsonb_build_object(p_field, case when p_max_items is null then p_items
                else jsonb_path_query_array(p_items, v_tail, v_limit) end),
            p_version, p_now, p_now, p_expires_at)
        on conflict (key) do update set
            data = case
                when t.expires_at <= p_now then excluded.data
                when coalesce(jsonb_typeof(t.data -> p_field), 'null') <> 'array' then
                    jsonb_set(t.data, array[p_field], excluded.data -> p_field)
                when p_max_items is null then
                    jsonb_set(t.data, array[p_field], (t.data -> p_field) || p_items)
                else jsonb_set(t.data, array[p_field], jsonb_path_query_array(
                    (t.data -> p_field) || p_items, v_tail, v_limit)) end,
            version = excluded.version,
            updated_at = excluded.updated_at,
            created_at = case when t.expires_at <= p_now
                then excluded.created_at else t.created_at end,
            expires_at = case when p_keep_expiry and coalesce(t.expires_at > p_now, true)
                then t.expires_at else excluded.expires_at end
        where t.expires_at <= p_now
            or coalesce(jsonb_typeof(t.data -> p_field), 'null') in ('array', 'null')
        returning jsonb_array_length(t.data -> p_field) into v_length;
        if v_length is not null then
            return query select v_length, 'array'::text;
            return;
        end if;
        select jsonb_typeof(t.data -> p_field) into v_type
        from public."agents" as t where t.key = p_key;
        if v_type is not null and v_type not in ('array', 'null') then
            return query select null::integer, v_type;
            return;
        end if;
        -- The field changed between the two statements: try again.
    end loop;
end;
$$;

-- pop: take the last item of the list field p_field under a row lock. popped = false
-- (and nothing written) when there is no live record, field or item; field_type names a
-- field holding something else than an array.
create or replace function public."agents_prism_pop"(
    p_key text, p_field text, p_version text, p_now timestamptz)
returns table (popped boolean, item jsonb, field_type text)
language plpgsql
set search_path = ''
as $$
declare
    v_list jsonb;
begin
    select t.data -> p_field into v_list
    from public."agents" as t
    where t.key = p_key and (t.expires_at is null or t.expires_at > p_now)
    for update;
    if v_list is null or jsonb_typeof(v_list) = 'null' then
        return query select false, null::jsonb, null::text;
        return;
    end if;
    if jsonb_typeof(v_list) <> 'array' then
        return query select false, null::jsonb, jsonb_typeof(v_list);
        return;
    end if;
    if jsonb_array_length(v_list) = 0 then
        return query select false, null::jsonb, 'array'::text;
        return;
    end if;
    update public."agents" as t set
        data = jsonb_set(t.data, array[p_field], v_list - (-1)),
        version = p_version, updated_at = p_now
    where t.key = p_key;
    return query select true, v_list -> (-1), 'array'::text;
end;
$$;

-- Functions are executable by PUBLIC by default (and Supabase grants new ones to anon
-- and authenticated): only the service_role may call these.
-- touch: give the live records among p_keys the expiry p_expires_at (null: never), and
-- change nothing else (value, version and times stay). One UPDATE: a row deleted meanwhile
-- is not revived, a concurrent write is not lost. Returns the rows it changed, with their
-- data when p_with_data (the reads of a store with touch_on_read slide and read at once).
create or replace function public."agents_prism_touch"(
    p_keys text[], p_now timestamptz, p_expires_at timestamptz,
    p_with_data boolean default false)
returns table (key text, data jsonb, version text, created_at timestamptz,
    updated_at timestamptz, expires_at timestamptz)
language sql
set search_path = ''
as $$
    update public."agents" as t set expires_at = p_expires_at
    where t.key = any(p_keys) and (t.expires_at is null or t.expires_at > p_now)
    returning t.key, case when p_with_data then t.data end, t.version, t.created_at,
        t.updated_at, t.expires_at;
$$;

revoke all on function public."agents_prism_set"(jsonb, timestamptz)
    from public, anon, authenticated;
revoke all on function public."agents_prism_put"(
    text, jsonb, text, timestamptz, timestamptz, text, boolean) from public, anon, authenticated;
revoke all on function public."agents_prism_remove"(text, timestamptz, text)
    from public, anon, authenticated;
revoke all on function public."agents_prism_append"(
    text, text, jsonb, text, timestamptz, timestamptz, boolean, integer)
    from public, anon, authenticated;
revoke all on function public."agents_prism_pop"(text, text, text, timestamptz)
    from public, anon, authenticated;
revoke all on function public."agents_prism_touch"(text[], timestamptz, timestamptz, boolean)
    from public, anon, authenticated;
grant execute on function public."agents_prism_set"(jsonb, timestamptz) to service_role;
grant execute on function public."agents_prism_touch"(
    text[], timestamptz, timestamptz, boolean) to service_role;
grant execute on function public."agents_prism_put"(
    text, jsonb, text, timestamptz, timestamptz, text, boolean) to service_role;
grant execute on function public."agents_prism_remove"(text, timestamptz, text)
    to service_role;
grant execute on function public."agents_prism_append"(
    text, text, jsonb, text, timestamptz, timestamptz, boolean, integer) to service_role;
grant execute on function public."agents_prism_pop"(text, text, text, timestamptz)
    to service_role;

-- Tell PostgREST to reload its schema cache so it sees the new functions at once.
notify pgrst, 'reload schema';
