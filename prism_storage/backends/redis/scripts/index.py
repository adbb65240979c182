"""The script that lists the store's key index (see :mod:`..index`)."""

from __future__ import annotations

from .script import Script

__all__ = ["LIST"]

#: One page of the index (see :mod:`..index`): KEYS[1] the index; ARGV: the Redis key
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
