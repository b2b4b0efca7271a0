-- room_snapshot: what a joining viewer needs, read in one step.
-- KEYS[1] room state hash   KEYS[2] room online hash
-- Returns {online count, flat HGETALL of the state hash}.
-- Invariant: read-only.
local total = 0
for _, n in ipairs(redis.call('HVALS', KEYS[2])) do total = total + tonumber(n) end
return {total, redis.call('HGETALL', KEYS[1])}
