"""The JSON scanner of the list scripts, in Lua.

The scripts never decode the JSON (Lua's cjson loses big integers and float digits and
turns ``[]`` into ``{}``): ``append`` and ``pop`` splice the text. This scanner walks the
top-level object to find the field's value, and the array's elements, skipping strings
(with their escapes) and nested brackets with ``string.find``, which runs at C speed over
everything in between. It takes any valid JSON, whitespace included.
"""

from __future__ import annotations

__all__ = ["SCANNER"]

SCANNER = r"""
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
