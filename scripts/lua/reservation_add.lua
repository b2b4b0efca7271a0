-- reservation_add: a user reserves a scheduled room; a late reservation is reminded at once.
-- KEYS[1] room info hash          ARGV[1] event stream cap (approximate MAXLEN)
-- KEYS[2] reservations zset       ARGV[2] event id (unique, the host's idempotency key)
-- KEYS[3] reminded users set      ARGV[3] now (ms since epoch)
-- KEYS[4] room event stream       ARGV[4] user id
--                                 ARGV[5] source: viewer | host
--                                 ARGV[6] room id (for the reminder's event id)
-- Returns {'ok', new (0|1), reservations, reminded now (0|1), starts_at}
--       | {'room_not_found'} | {'bad_state', status}.
-- Invariant: one reservation per user (reservation.created only for a new one); a reservation
-- made once the reminder time has passed gets its reminder.due here, at most once per user and
-- start time (the reminded set is shared with reminders_emit).
local info = redis.call('HMGET', KEYS[1], 'status', 'starts_at', 'remind_at', 'title')
local status, starts_at, remind_at, title = info[1], info[2], info[3], info[4]
if not status then
  return {'room_not_found'}
end
if status ~= 'scheduled' then
  return {'bad_state', status}
end
local now, user = ARGV[3], ARGV[4]
local new = redis.call('ZADD', KEYS[2], 'NX', now, user)
if new == 1 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[1], '*', 'id', ARGV[2],
    'type', 'reservation.created', 'ts', now,
    'data', cjson.encode({user = user, source = ARGV[5], starts_at = tonumber(starts_at)}))
end
local reminded = 0
if remind_at and tonumber(now) >= tonumber(remind_at)
    and redis.call('SADD', KEYS[3], user) == 1 then
  local id = string.sub(redis.sha1hex('reminder.due|' .. ARGV[6] .. '|' .. user .. '|'
    .. tostring(starts_at)), 1, 32)
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[1], '*', 'id', id,
    'type', 'reminder.due', 'ts', now,
    'data', cjson.encode({user = user, starts_at = tonumber(starts_at), title = title,
      reserved_at = tonumber(redis.call('ZSCORE', KEYS[2], user))}))
  reminded = 1
end
return {'ok', new, redis.call('ZCARD', KEYS[2]), reminded, starts_at or ''}
