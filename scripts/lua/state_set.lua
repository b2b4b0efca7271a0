-- state_set: set (or clear) one field of the room state and publish the change, atomically.
-- KEYS[1] room state hash        ARGV[1] field (pinned, popup, phrases)
--                                ARGV[2] new value (msgpack), or '' to delete the field
--                                ARGV[3] bus channel of the room
--                                ARGV[4] bus message announcing the change (msgpack)
-- Returns 1.
-- Invariant: a viewer who joins after the publish reads the new value in its snapshot, and one
-- who joined before gets the bus message: nobody misses the change.
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
