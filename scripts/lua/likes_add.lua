-- likes_add: add a node's likes of one tick to the room total and announce the new total.
-- KEYS[1] room state hash        ARGV[1] likes to add (> 0)
-- KEYS[2] room meta hash         ARGV[2] bus channel of the room
-- KEYS[3] room history stream    ARGV[3] history cap   ARGV[4] history ttl (ms)
--                                ARGV[5] epoch to use if the room has none
-- Returns the new total.
-- Invariant: the total only grows, and every published total is a value the hash held, so
-- nodes may apply totals in any order by keeping the largest.
--!include lib/room_publish.lua
local total = redis.call('HINCRBY', KEYS[1], 'likes', tonumber(ARGV[1]))
room_publish(KEYS[2], KEYS[3], ARGV[2], cmsgpack.pack({k = 'likes', n = total}),
  ARGV[3], ARGV[4], ARGV[5])
return total
