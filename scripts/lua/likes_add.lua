-- likes_add: add a node's likes of one tick to the room total and announce the new total.
-- KEYS[1] room state hash        ARGV[1] likes to add (> 0)
--                                ARGV[2] bus channel of the room
-- Returns the new total.
-- Invariant: the total only grows, and every published total is a value the hash held, so
-- nodes may apply totals in any order by keeping the largest.
local total = redis.call('HINCRBY', KEYS[1], 'likes', tonumber(ARGV[1]))
redis.call('PUBLISH', ARGV[2], cmsgpack.pack({k = 'likes', n = total}))
return total
