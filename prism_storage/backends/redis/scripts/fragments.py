"""Lua shared by several scripts, composed into their texts in Python (each script is sent
to the server whole: Lua has no import). Layout of a stored record: see :mod:`..stored`."""

from __future__ import annotations

__all__ = ["COMMON", "INDEX", "STORE_AND_INDEX"]

COMMON = r"""
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

# The store's key index (see :mod:`..index`): KEYS[2], a sorted set of the record keys
# (score 0, so ordered by their bytes), given on a standalone server only.
INDEX = r"""
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

#: Store ``stored`` under ``key`` with the expiry ``ttl`` (PX ms, or '' for none; pruning
#: the index of expired keys when records expire), then list the key in the index: the
#: end of ``put`` and ``stamp``. Needs :data:`COMMON` and
#: :data:`INDEX`, and the locals ``stored`` and ``ttl``.
STORE_AND_INDEX = """\
if ttl == '' then
  redis.call('SET', key, stored)
else
  redis.call('SET', key, stored, 'PX', ttl)
  prune(PROBES)
end
indexed()
"""
