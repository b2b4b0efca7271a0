-- room_create: create a room's control record (title, anchor, schedule, ...) and tell the host.
-- KEYS[1] room info hash          ARGV[1] event stream cap (approximate MAXLEN)
-- KEYS[2] room event stream       ARGV[2] event id (unique, the host's idempotency key)
--                                 ARGV[3] event time (ms since epoch)
--                                 ARGV[4] event payload (JSON)
--                                 ARGV[5..] field, value pairs of the record
-- Returns 1 when the room was created, 0 when it exists already (nothing changed).
-- Invariant: a room is created once; its record and its room.created event appear together.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local fields = {}
for i = 5, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*',
  'id', ARGV[2], 'type', 'room.created', 'ts', ARGV[3], 'data', ARGV[4])
return 1
