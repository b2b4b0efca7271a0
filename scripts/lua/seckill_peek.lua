-- seckill_peek: what a node needs to answer grabs of a sold-out sale by itself.
-- KEYS[1] sale hash   KEYS[2] sale winners set
-- Returns {left, ver, start, end, live, winners...} (left = -1 for an unknown sale).
-- Invariant: read-only; the winners are read in the same step as the counters, so a node that
-- sees left = 0 at version v knows every user who could hold anything at v.
local s = redis.call('HMGET', KEYS[1], 'left', 'ver', 'start', 'end', 'state')
if not s[1] then return {-1, 0, 0, 0, 0} end
local out = {tonumber(s[1]), tonumber(s[2]), tonumber(s[3]), tonumber(s[4]),
  s[5] == 'live' and 1 or 0}
if tonumber(s[1]) == 0 then
  for _, user in ipairs(redis.call('SMEMBERS', KEYS[2])) do out[#out + 1] = user end
end
return out
