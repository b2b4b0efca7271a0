-- room_transition: start or end a room, or switch its rehearsal mode, and tell the host.
-- KEYS[1] room info hash          ARGV[1] event stream cap (approximate MAXLEN)
-- KEYS[2] room live numbers hash  ARGV[2] event id (unique, the host's idempotency key)
-- KEYS[3] room event stream       ARGV[3] event time (ms since epoch)
-- KEYS[4] room unique-viewers HyperLogLog
--                                 ARGV[4] action: start | end | rehearsal_on | rehearsal_off
-- Returns {'ok', status, rehearsal ('0'|'1')} | {'room_not_found'} | {'bad_state', status}.
-- Invariant: status only moves scheduled -> live -> ended (or scheduled -> ended); every change
-- and its event (room.started, room.ended, room.rehearsal) happen together. Starting resets
-- the session's live numbers (peak, danmaku, unique viewers) and ends rehearsal.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {'room_not_found'}
end
local action, now = ARGV[4], ARGV[3]
local kind, data
if action == 'start' then
  if status ~= 'scheduled' then
    return {'bad_state', status}
  end
  redis.call('HSET', KEYS[1], 'status', 'live', 'started_at', now, 'rehearsal', '0')
  redis.call('DEL', KEYS[2], KEYS[4])
  status = 'live'
  kind, data = 'room.started', {status = 'live', started_at = tonumber(now)}
elseif action == 'end' then
  if status == 'ended' then
    return {'bad_state', status}
  end
  redis.call('HSET', KEYS[1], 'status', 'ended', 'ended_at', now, 'rehearsal', '0')
  kind, data = 'room.ended', {status = 'ended', was = status, ended_at = tonumber(now)}
  status = 'ended'
elseif action == 'rehearsal_on' or action == 'rehearsal_off' then
  if status == 'ended' then
    return {'bad_state', status}
  end
  local on = action == 'rehearsal_on'
  redis.call('HSET', KEYS[1], 'rehearsal', on and '1' or '0')
  kind, data = 'room.rehearsal', {rehearsal = on, status = status}
else
  return redis.error_reply('unknown action ' .. tostring(action))
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*',
  'id', ARGV[2], 'type', kind, 'ts', now, 'data', cjson.encode(data))
return {'ok', status, redis.call('HGET', KEYS[1], 'rehearsal') or '0'}
