-- room_update: change a room's title, cover, preview text or scheduled start, and tell the host.
-- KEYS[1] room info hash          ARGV[1] event stream cap (approximate MAXLEN)
-- KEYS[2] room event stream       ARGV[2] event id (unique, the host's idempotency key)
-- KEYS[3] reminded users set      ARGV[3] event time (ms since epoch)
-- KEYS[4] reminder queue          ARGV[4] event payload (JSON)
--                                 ARGV[5..] field, value pairs to set ('' deletes the field)
-- Returns {'ok', status} | {'room_not_found'} | {'bad_state', status}.
-- Invariant: an ended room never changes; a new starts_at (only while scheduled) starts the
-- reminders over (the reminded set, queue and progress mark are reset with it, atomically).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {'room_not_found'}
end
if status == 'ended' then
  return {'bad_state', status}
end
for i = 5, #ARGV, 2 do
  if ARGV[i] == 'starts_at' then
    if status ~= 'scheduled' then
      return {'bad_state', status}
    end
    redis.call('DEL', KEYS[3], KEYS[4])
    redis.call('HDEL', KEYS[1], 'reminders')
  end
end
for i = 5, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*',
  'id', ARGV[2], 'type', 'room.updated', 'ts', ARGV[3], 'data', ARGV[4])
return {'ok', status}
