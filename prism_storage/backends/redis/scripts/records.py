"""The scripts that write, delete, read and touch whole records.

Replies: ``put`` -> ``{1, created}`` or ``{0, current version or false}``; conditional
remove -> ``{1, existed}`` or ``{0, current}``; ``stamp`` -> 1 if it created the record,
else 0; ``stamp_many`` -> nothing; ``delete`` -> how many keys it deleted; ``read`` ->
``{stored string, expiry in Unix ms or -1}`` or false; ``touch`` -> 1 or 0
(whether the record existed).
"""

from __future__ import annotations

from .fragments import COMMON, INDEX, STORE_AND_INDEX
from .script import Script

__all__ = ["DELETE", "PUT", "READ", "REMOVE", "STAMP", "STAMP_MANY", "TOUCH"]

#: ARGV: the JSON, version, now (15-digit Unix ms), PX ms or '', condition ('' none,
#: 'absent' or 'version'), the expected version.
PUT = Script(
    "put",
    COMMON
    + INDEX
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
"""
    + STORE_AND_INDEX
    + """\
if current then return {1, 0} end
return {1, 1}
""",
    indexed=True,
)

#: The creation time an unconditional overwrite of ``record`` keeps: the record's own,
#: zeros for one written before versions, ``nil`` when there is none (or a value of
#: another type, which SET replaces). Used by STAMP and STAMP_MANY.
_KEPT_CREATED = r"""
local function created_of(record)
  local head = redis.pcall('GETRANGE', record, 0, 51)
  if type(head) == 'string' and head ~= '' then
    return sub(head, 1, 3) == '%1|' and sub(head, 21, 35) or '000000000000000'
  end
end
"""

#: The first half of a large unconditional write, in one MULTI with ``APPEND key json``:
#: store the header alone (keeping created_at), then the JSON is appended by a plain
#: command. A large value never goes through Lua: each script argument is copied into a
#: Lua string, which costs about 1.4 ms per MB where a SET takes microseconds.
#: ARGV: version, now (15-digit Unix ms), PX ms or ''.
STAMP = Script(
    "stamp",
    COMMON
    + INDEX
    + _KEPT_CREATED
    + r"""
local version, now, ttl = ARGV[1], ARGV[2], ARGV[3]
local created = created_of(key)
local stored = header(version, created or now, now)
"""
    + STORE_AND_INDEX
    + """\
if created then return 0 end
return 1
""",
    indexed=True,
)

#: Unconditional writes of several small records at once (``set_many`` on one server):
#: one script instead of a STAMP and an APPEND per record, each record stored whole and
#: keeping its created_at, as by PUT. KEYS: the first record, the index (as for every
#: writing script), then the other records. ARGV: now (15-digit Unix ms), PX ms or '',
#: then a version and the JSON per record, in the order of the keys.
STAMP_MANY = Script(
    "stamp_many",
    COMMON
    + INDEX
    + _KEPT_CREATED
    + r"""
local now, ttl = ARGV[1], ARGV[2]
local function store(record, version, json)
  local stored = header(version, created_of(record) or now, now) .. json
  if ttl == '' then
    redis.call('SET', record, stored)
  else
    redis.call('SET', record, stored, 'PX', ttl)
  end
  redis.call('ZADD', index, 0, sub(record, #store_prefix + 1))
end
store(key, ARGV[3], ARGV[4])
for i = 3, #KEYS do
  store(KEYS[i], ARGV[2 * i - 1], ARGV[2 * i])
end
if ttl ~= '' then prune(PROBES) end
""",
    indexed=True,
)

#: ARGV: the expected version.
REMOVE = Script(
    "remove",
    COMMON
    + INDEX
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
    + INDEX
    + r"""
local deleted = redis.call('DEL', key)
unindexed()
return deleted
""",
    indexed=True,
)

#: The stored string and its expiry (Unix ms, or -1 for none), for small records and on
#: a cluster (a large one is read with MULTI, see ``ScriptedRecords._read_records``).
#: The expiry is the server's own (``PEXPIRETIME``), so every read of an unchanged record
#: reports the same one; a server older than Redis 7.0 has no such command, and the
#: script adds ``PTTL`` to its clock instead (which may differ by a millisecond from one
#: read to the next). ARGV: PX ms, or nothing: the expiry to slide the record to
#: (``touch_on_read``).
READ = Script(
    "read",
    r"""
local text = redis.call('GET', KEYS[1])
if not text then return false end
if ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local at = redis.pcall('PEXPIRETIME', KEYS[1])
if type(at) == 'number' then return {text, at} end
local pttl = redis.call('PTTL', KEYS[1])
if pttl < 0 then return {text, -1} end
local t = redis.call('TIME')
return {text, t[1] * 1000 + math.floor(t[2] / 1000) + pttl}
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
