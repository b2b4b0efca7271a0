-- reminders_emit: one batch of a room's reminder pass: one reminder.due per reservation.
-- KEYS[1] room info hash          ARGV[1] event stream cap (approximate MAXLEN)
-- KEYS[2] reservations zset       ARGV[2] now (ms since epoch)
-- KEYS[3] reminded users set      ARGV[3] starts_at the job was scheduled for
-- KEYS[4] reminder queue zset     ARGV[4] batch size
-- KEYS[5] room event stream       ARGV[5] room id (for the events' ids)
-- Returns {emitted in this batch, left in the queue}; left = -1 when the job is stale (the room
-- is no longer scheduled, or its start moved: a newer job owns the reminders).
-- Invariant: each reservation gets exactly one reminder.due per start time, however often the
-- pass is run, interrupted or resumed: the first batch copies the reservations into the queue,
-- each batch pops from it and skips users already in the reminded set; the event id is derived
-- from room, user and start time, so even a copy elsewhere would carry the same id.
local info = redis.call('HMGET', KEYS[1], 'status', 'starts_at', 'reminders', 'title')
local status, starts_at, progress, title = info[1], info[2], info[3], info[4]
if status ~= 'scheduled' or starts_at ~= ARGV[3] then
  return {0, -1}
end
if progress == 'done' then
  return {0, 0}
end
if not progress then
  redis.call('ZRANGESTORE', KEYS[4], KEYS[2], 0, -1)
  redis.call('HSET', KEYS[1], 'reminders', 'running')
end
local popped = redis.call('ZPOPMIN', KEYS[4], ARGV[4])
local emitted = 0
for i = 1, #popped, 2 do
  local user = popped[i]
  local reserved_at = redis.call('ZSCORE', KEYS[2], user)
  if reserved_at and redis.call('SADD', KEYS[3], user) == 1 then
    local id = string.sub(redis.sha1hex('reminder.due|' .. ARGV[5] .. '|' .. user .. '|'
      .. starts_at), 1, 32)
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[1], '*', 'id', id,
      'type', 'reminder.due', 'ts', ARGV[2],
      'data', cjson.encode({user = user, starts_at = tonumber(starts_at), title = title,
        reserved_at = tonumber(reserved_at)}))
    emitted = emitted + 1
  end
end
local left = redis.call('ZCARD', KEYS[4])
if left == 0 then
  redis.call('HSET', KEYS[1], 'reminders', 'done')
end
return {emitted, left}
