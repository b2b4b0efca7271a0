-- state_set: set (or clear) one field of the room state and publish the change, atomically.
-- KEYS[1] room state hash        ARGV[1] field (pinned, popup, phrases)
-- KEYS[2] room meta hash         ARGV[2] new value (msgpack), or '' to delete the field
-- KEYS[3] room history stream    ARGV[3] bus channel of the room
--                                ARGV[4] bus message announcing the change (msgpack)
--                                ARGV[5] history cap   ARGV[6] history ttl (ms)
--                                ARGV[7] epoch to use if the room has none
-- Returns {epoch, seq} of the announcement.
-- Invariant: a viewer who joins after the publish reads the new value in its snapshot, and one
-- who joined before gets the bus message: nobody misses the change.
--!include lib/room_publish.lua
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return room_publish(KEYS[2], KEYS[3], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
