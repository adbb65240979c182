"""The list scripts: ``append`` and ``pop`` splice the record's JSON text in place.

Both leave in the header where the list now ends and how long it is, so that the next
``append`` to the same field needs no scan (see :mod:`..stored`).

Replies: ``append`` -> the new length, or ``{-1, first character of the field's value}``
when it is not a list; ``pop`` -> the JSON text of the item, or false (the same ``{-1,
...}`` when the field is not a list).
"""

from __future__ import annotations

from .fragments import COMMON, INDEX
from .scanner import SCANNER
from .script import Script

__all__ = ["APPEND", "POP"]

#: ARGV: field (JSON string), field (raw UTF-8), items (JSON array), max items or '',
#: PX ms or '' (reset the expiry), default PX ms or '' (a new record's), new version, now
#: (15-digit Unix ms).
APPEND = Script(
    "append",
    COMMON
    + INDEX
    + SCANNER
    + r"""
local field_json, name, items, max_items = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ttl, default_ttl, version, now = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local item_starts, item_close = elements(items, 1)
local added = #item_starts
local field_id = sub(redis.sha1hex(name), 1, 16)

-- The items as array contents, without the first `skip` of them.
local function items_from(skip)
  if skip >= added then return '' end
  return sub(items, item_starts[skip + 1], item_close - 1)
end

-- Replace the record by header .. json, where json's list of `count` ends at `close`.
local function write(json, created, keep_ttl, count, close)
  local stored = header(version, created, now, field_id, count, HEAD + close - 1) .. json
  if ttl ~= '' then
    redis.call('SET', key, stored, 'PX', ttl)
  elseif keep_ttl then
    redis.call('SET', key, stored, 'KEEPTTL')
  elseif default_ttl ~= '' then
    redis.call('SET', key, stored, 'PX', default_ttl)
  else
    redis.call('SET', key, stored)
  end
  indexed()
  if ttl ~= '' or default_ttl ~= '' then prune(PROBES) end
end

-- The header says where this field's list ends and how long it is (the last append or
-- pop wrote it; any other write clears it): insert there, without reading the record.
local head = redis.call('GETRANGE', key, 0, HEAD - 1)
if sub(head, 1, 3) == '%1|' and sub(head, 53, 68) == field_id then
  local count, close = tonumber(sub(head, 70, 79)), tonumber(sub(head, 81, 92))
  if not max_items or count + added <= max_items then
    local tail = redis.call('GETRANGE', key, close, -1)
    if byte(tail, 1) == 93 then
      local insert = (count > 0 and added > 0 and ',' or '') .. items_from(0)
      redis.call('SETRANGE', key, close, insert .. tail)
      local stamp = header(version, sub(head, 21, 35), now, field_id, count + added,
        close + #insert)
      redis.call('SETRANGE', key, 0, stamp)
      if ttl ~= '' then redis.call('PEXPIRE', key, ttl) end
      return count + added
    end
  end
end

local text = redis.call('GET', key)
if not text then
  local length = added
  if max_items and length > max_items then length = max_items end
  local json = '{' .. field_json .. ':[' .. items_from(added - length) .. ']}'
  write(json, now, false, length, #json - 1)
  return length
end

local _, created, start = meta(text)
local object = skip_ws(text, start)
local value_start, value_end_, close = find_member(text, object, name)
local first = value_start and byte(text, value_start)

if not value_start or first == 110 then  -- absent or null: a new list
  local length = added
  if max_items and length > max_items then length = max_items end
  local list = '[' .. items_from(added - length) .. ']'
  local before, after
  if value_start then
    before, after = sub(text, start, value_start - 1), sub(text, value_end_)
  else
    local empty = skip_ws(text, object + 1) == close
    before = sub(text, start, close - 1) .. (empty and '' or ',') .. field_json .. ':'
    after = sub(text, close)
  end
  write(before .. list .. after, created, true, length, #before + #list)
  return length
end
if first ~= 91 then return {-1, string.char(first)} end

local starts, array_close = elements(text, value_start)
local kept = #starts
local total = kept + added
if max_items and total > max_items then
  -- Keep the latest max_items: drop the oldest, of the list and then of the items.
  local drop = total - max_items
  local list
  if drop < kept then
    list = '[' .. sub(text, starts[drop + 1], array_close - 1)
      .. (added > 0 and ',' or '') .. items_from(0) .. ']'
  else
    list = '[' .. items_from(drop - kept) .. ']'
  end
  local before = sub(text, start, value_start - 1)
  write(before .. list .. sub(text, value_end_), created, true, max_items, #before + #list)
  return max_items
end
local insert = (kept > 0 and added > 0 and ',' or '') .. items_from(0)
if start == 1 then  -- written before versions: rewrite with a header
  local before = sub(text, 1, array_close - 1) .. insert
  write(before .. sub(text, array_close), created, true, total, #before + 1)
else
  -- In place: the new items and what follows the ']', then the header; the rest of the
  -- record is not copied.
  redis.call('SETRANGE', key, array_close - 1, insert .. sub(text, array_close))
  local stamp = header(version, created, now, field_id, total, array_close - 1 + #insert)
  redis.call('SETRANGE', key, 0, stamp)
  if ttl ~= '' then redis.call('PEXPIRE', key, ttl) end
end
return total
""",
    indexed=True,
)

#: ARGV: field (raw UTF-8), new version, now (15-digit Unix ms).
POP = Script(
    "pop",
    COMMON
    + SCANNER
    + r"""
local name, version, now = ARGV[1], ARGV[2], ARGV[3]
local text = redis.call('GET', key)
if not text then return false end
local _, created, start = meta(text)
local value_start, _, _ = find_member(text, skip_ws(text, start), name)
if not value_start then return false end
local first = byte(text, value_start)
if first == 110 then return false end  -- null: no items
if first ~= 91 then return {-1, string.char(first)} end
local starts, array_close = elements(text, value_start)
local count = #starts
if count == 0 then return false end
local item = sub(text, starts[count], value_end(text, starts[count]) - 1)
-- Cut from the end of the previous item (or the '[') up to the ']'.
local cut = count > 1 and value_end(text, starts[count - 1]) or value_start + 1
-- The list now ends at HEAD + (cut - start), 0-based: the next append needs no scan.
local stored = header(version, created, now, sub(redis.sha1hex(name), 1, 16), count - 1,
  HEAD + cut - start) .. sub(text, start, cut - 1) .. sub(text, array_close)
redis.call('SET', key, stored, 'KEEPTTL')
return item
""",
)
