-- reservation_cancel: a user withdraws a reservation.
-- KEYS[1] room info hash          ARGV[1] event stream cap (approximate MAXLEN)
-- KEYS[2] reservations zset       ARGV[2] event id (unique, the host's idempotency key)
-- KEYS[3] room event stream       ARGV[3] now (ms since epoch)
--                                 ARGV[4] user id
--                                 ARGV[5] source: viewer | host
-- Returns {'ok', removed (0|1), reservations} | {'room_not_found'}.
-- Invariant: reservation.cancelled is written only when a reservation was removed.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'room_not_found'}
end
local removed = redis.call('ZREM', KEYS[2], ARGV[4])
if removed == 1 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'id', ARGV[2],
    'type', 'reservation.cancelled', 'ts', ARGV[3],
    'data', cjson.encode({user = ARGV[4], source = ARGV[5]}))
end
return {'ok', removed, redis.call('ZCARD', KEYS[2])}
