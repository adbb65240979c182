"""The Lua scripts of the ``redis`` backend: each write is one script on one key.

A script runs alone on the server, so reading the record, checking a condition and
writing is one atomic step for every client of every process; it touches only
``KEYS[1]``, so it runs on a Redis Cluster too. Layout: see :mod:`.stored`.

The scripts never decode the JSON (Lua's cjson loses big integers and float digits and
turns ``[]`` into ``{}``): ``append`` and ``pop`` splice the text. A small scanner walks
the top-level object to find the field's value, and the array's elements, skipping
strings (with their escapes) and nested brackets with ``string.find``, which runs at C
speed over everything in between. It takes any valid JSON, whitespace included. Both
leave in the header where the list now ends and how long it is, so that the next
``append`` to the same field needs no scan (see :mod:`.stored`).

Replies: ``put`` -> ``{1, created}`` or ``{0, current version or false}``; conditional
remove -> ``{1, existed}`` or ``{0, current}``; ``append`` -> the new length, or
``{-1, first character of the field's value}`` when it is not a list; ``pop`` -> the
JSON text of the item, or nil; ``read`` -> ``{stored string, PTTL}`` or nil; ``touch`` ->
1 or 0 (whether the record existed).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

__all__ = [
    "APPEND",
    "DELETE",
    "LIST",
    "POP",
    "PUT",
    "READ",
    "REMOVE",
    "STAMP",
    "TOUCH",
    "Script",
]


@dataclass(frozen=True)
class Script:
    """A Lua script and its SHA-1 (the name ``EVALSHA`` calls it by)."""

    name: str
    body: str
    #: The script writes or deletes a record and keeps the key index (KEYS[2]) in step.
    indexed: bool = False
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.body.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)


_COMMON = r"""
local key = KEYS[1]
local find, sub, byte = string.find, string.sub, string.byte

-- The header (93 bytes), then the JSON: "%1|" version "|" created "|" updated "|", and
-- where the list `append` last wrote ends: field id "|" its length "|" offset of its "]" "|".
local HEAD = 93
local NO_HINT = '----------------|0000000000|000000000000|'

-- Version, created (15 digits) and where the JSON starts, of a stored string; a record
-- written before versions is the JSON alone: SHA-1 version, created at 0.
local function meta(text)
  if sub(text, 1, 3) == '%1|' then
    return sub(text, 4, 19), sub(text, 21, 35), HEAD + 1
  end
  return sub(redis.sha1hex(text), 1, 16), '000000000000000', 1
end

local function header(version, created, updated, field_id, count, close)
  local hint = NO_HINT
  if field_id then hint = field_id .. string.format('|%010d|%012d|', count, close) end
  return '%1|' .. version .. '|' .. created .. '|' .. updated .. '|' .. hint
end
"""

# The store's key index (see :mod:`.index`): KEYS[2], a sorted set of the record keys
# (score 0, so ordered by their bytes), given on a standalone server only.
_INDEX = r"""
local index = KEYS[2]
local split = find(key, '\31', 1, true)
local store_prefix, record_key = sub(key, 1, split), sub(key, split + 1)

local function indexed()
  if index then redis.call('ZADD', index, 0, record_key) end
end

local function unindexed()
  if index then redis.call('ZREM', index, record_key) end
end

-- Drop entries of keys that expired, a few at random, so that a store whose records
-- expire keeps an index of about its live keys without ever being listed. The member ''
-- marks a complete index and stays. ZRANDMEMBER needs Redis 6.2; older servers skip this.
local function prune(probes)
  if not index then return end
  local members = redis.pcall('ZRANDMEMBER', index, probes)
  if type(members) ~= 'table' or members.err then return end
  for _, member in ipairs(members) do
    if member ~= '' and redis.call('EXISTS', store_prefix .. member) == 0 then
      redis.call('ZREM', index, member)
    end
  end
end
local PROBES = 3
"""

_SCANNER = r"""
local function corrupt()
  error('PRISM-CORRUPT: the stored record is not a JSON object')
end

local function skip_ws(s, i)
  local k = find(s, '[^ \t\n\r]', i)
  if not k then corrupt() end
  return k
end

-- The closing quote of the string opening at i.
local function string_end(s, i)
  local j = i + 1
  while true do
    local k = find(s, '["\\]', j)
    if not k then corrupt() end
    if byte(s, k) == 34 then return k end
    j = k + 2
  end
end

-- Just past the value starting at i.
local function value_end(s, i)
  local c = byte(s, i)
  if c == 34 then return string_end(s, i) + 1 end
  if c ~= 123 and c ~= 91 then  -- a number, true, false or null
    return find(s, '[ \t\n\r,%]}]', i) or #s + 1
  end
  local depth, j = 0, i
  while true do
    local k = find(s, '[%[%]{}"]', j)
    if not k then corrupt() end
    local b = byte(s, k)
    if b == 34 then
      j = string_end(s, k) + 1
    elseif b == 91 or b == 123 then
      depth, j = depth + 1, k + 1
    else
      depth, j = depth - 1, k + 1
      if depth == 0 then return j end
    end
  end
end

local ESCAPES = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n',
                 r = '\r', t = '\t'}

local function utf8(cp)
  local floor, char = math.floor, string.char
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64,
              0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

-- The text of a JSON string's contents with its escapes resolved.
local function unescape(raw)
  local out, i = {}, 1
  while true do
    local k = find(raw, '\\', i, true)
    if not k then
      out[#out + 1] = sub(raw, i)
      return table.concat(out)
    end
    out[#out + 1] = sub(raw, i, k - 1)
    local c = sub(raw, k + 1, k + 1)
    if c == 'u' then
      local cp = tonumber(sub(raw, k + 2, k + 5), 16) or corrupt()
      i = k + 6
      if cp >= 0xD800 and cp < 0xDC00 and sub(raw, i, i + 1) == '\\u' then
        local low = tonumber(sub(raw, i + 2, i + 5), 16)
        if low and low >= 0xDC00 and low < 0xE000 then
          cp, i = 0x10000 + (cp - 0xD800) * 0x400 + (low - 0xDC00), i + 6
        end
      end
      out[#out + 1] = utf8(cp)
    else
      out[#out + 1] = ESCAPES[c] or corrupt()
      i = k + 2
    end
  end
end

-- In the object whose '{' is at i: where the value of member `name` starts and ends
-- (the last such member, as JSON decoders keep the last), or nil; and the '}'.
local function find_member(s, i, name)
  if byte(s, i) ~= 123 then corrupt() end
  local j = skip_ws(s, i + 1)
  if byte(s, j) == 125 then return nil, nil, j end
  local found_start, found_end
  while true do
    if byte(s, j) ~= 34 then corrupt() end
    local k = string_end(s, j)
    local raw = sub(s, j + 1, k - 1)
    local matches
    if find(raw, '\\', 1, true) then matches = unescape(raw) == name else matches = raw == name end
    j = skip_ws(s, k + 1)
    if byte(s, j) ~= 58 then corrupt() end
    j = skip_ws(s, j + 1)
    local e = value_end(s, j)
    if matches then found_start, found_end = j, e end
    j = skip_ws(s, e)
    if byte(s, j) == 125 then return found_start, found_end, j end
    if byte(s, j) ~= 44 then corrupt() end
    j = skip_ws(s, j + 1)
  end
end

-- Where each element of the array whose '[' is at i starts, and its ']'.
local function elements(s, i)
  local starts = {}
  local j = skip_ws(s, i + 1)
  if byte(s, j) == 93 then return starts, j end
  while true do
    starts[#starts + 1] = j
    j = skip_ws(s, value_end(s, j))
    if byte(s, j) == 93 then return starts, j end
    if byte(s, j) ~= 44 then corrupt() end
    j = skip_ws(s, j + 1)
  end
end
"""

#: ARGV: the JSON, version, now (15-digit Unix ms), PX ms or '', condition ('' none,
#: 'absent' or 'version'), the expected version.
PUT = Script(
    "put",
    _COMMON
    + _INDEX
    + r"""
local json, version, now = ARGV[1], ARGV[2], ARGV[3]
local ttl, condition, expected = ARGV[4], ARGV[5], ARGV[6]
local head = redis.pcall('GETRANGE', key, 0, 51)
local current, created = false, nil
if type(head) == 'table' then
  -- A value of another type, which no store of ours wrote: SET replaces it, as it always
  -- did; a conditional write refuses it.
  if condition ~= '' then return head end
elseif head ~= '' then
  if sub(head, 1, 3) == '%1|' then
    current, created = sub(head, 4, 19), sub(head, 21, 35)
  else
    current, created = meta(redis.call('GET', key))
  end
end
if condition == 'absent' then
  if current then return {0, current} end
elseif condition == 'version' and expected ~= current then
  return {0, current}
end
local stored = header(version, created or now, now) .. json
if ttl == '' then
  redis.call('SET', key, stored)
else
  redis.call('SET', key, stored, 'PX', ttl)
  prune(PROBES)
end
indexed()
if current then return {1, 0} end
return {1, 1}
""",
    indexed=True,
)

#: The first half of a large unconditional write, in one MULTI with ``APPEND key json``:
#: store the header alone (keeping created_at), then the JSON is appended by a plain
#: command. A large value never goes through Lua: each script argument is copied into a
#: Lua string, which costs about 1.4 ms per MB where a SET takes microseconds.
#: ARGV: version, now (15-digit Unix ms), PX ms or ''.
STAMP = Script(
    "stamp",
    _COMMON
    + _INDEX
    + r"""
local version, now, ttl = ARGV[1], ARGV[2], ARGV[3]
local head = redis.pcall('GETRANGE', key, 0, 51)
local created
if type(head) == 'string' and head ~= '' then
  created = sub(head, 1, 3) == '%1|' and sub(head, 21, 35) or '000000000000000'
end
local stored = header(version, created or now, now)
if ttl == '' then
  redis.call('SET', key, stored)
else
  redis.call('SET', key, stored, 'PX', ttl)
  prune(PROBES)
end
indexed()
if created then return 0 end
return 1
""",
    indexed=True,
)

#: ARGV: the expected version.
REMOVE = Script(
    "remove",
    _COMMON
    + _INDEX
    + r"""
local head = redis.call('GETRANGE', key, 0, 51)
if head == '' then return {0, false} end
local current
if sub(head, 1, 3) == '%1|' then
  current = sub(head, 4, 19)
else
  current = meta(redis.call('GET', key))
end
if current ~= ARGV[1] then return {0, current} end
redis.call('DEL', key)
unindexed()
return {1, 1}
""",
    indexed=True,
)

#: ``DEL`` and the key out of the index, in one step (no write of the key in between can
#: leave it present but unlisted).
DELETE = Script(
    "delete",
    r"""
local key = KEYS[1]
local find, sub = string.find, string.sub
"""
    + _INDEX
    + r"""
local deleted = redis.call('DEL', key)
unindexed()
return deleted
""",
    indexed=True,
)

#: One page of the index (see :mod:`.index`): KEYS[1] the index; ARGV: the Redis key
#: prefix of records, the ZRANGEBYLEX bounds, the page size, how many members one call
#: may look at. Members whose key no longer exists (expired, evicted) are dropped on the
#: way. Replies ``false`` when the index is not complete (no member ''), else
#: ``{keys, last member looked at or false at the end}``.
LIST = Script(
    "list",
    r"""
local index, prefix, low, high = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local limit, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
if not redis.call('ZSCORE', index, '') then return false end
local keys, looked = {}, 0
while looked < budget do
  local chunk = math.min(limit - #keys + 16, budget - looked)
  local members = redis.call('ZRANGEBYLEX', index, low, high, 'LIMIT', 0, chunk)
  for _, member in ipairs(members) do
    looked = looked + 1
    if member ~= '' then
      if redis.call('EXISTS', prefix .. member) == 1 then
        keys[#keys + 1] = member
        if #keys == limit then return {keys, member} end
      else
        redis.call('ZREM', index, member)
      end
    end
    low = '(' .. member
  end
  if #members < chunk then return {keys, false} end
end
return {keys, string.sub(low, 2)}
""",
)

#: The stored string and its PTTL at one instant, with the server's time (for small
#: records and on a cluster; a large one is read with MULTI: GET, PTTL, TIME, EXEC).
#: ARGV: PX ms, or nothing: the expiry to slide the record to (``touch_on_read``).
READ = Script(
    "read",
    r"""
local text = redis.call('GET', KEYS[1])
if not text then return false end
if ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local t = redis.call('TIME')
return {text, redis.call('PTTL', KEYS[1]), t[1], t[2]}
""",
)

#: ARGV: PX ms, or '' (no expiry). Only the key's expiry changes: the stored string (value,
#: version, times) is left as it is. 1 if the record existed, else 0.
TOUCH = Script(
    "touch",
    r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 1
""",
)

#: ARGV: field (JSON string), field (raw UTF-8), items (JSON array), max items or '',
#: PX ms or '' (reset the expiry), default PX ms or '' (a new record's), new version, now
#: (15-digit Unix ms).
APPEND = Script(
    "append",
    _COMMON
    + _INDEX
    + _SCANNER
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
    _COMMON
    + _SCANNER
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
