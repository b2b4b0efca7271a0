-- numbers_tick: a node's once-a-second report for a room it serves.
-- KEYS[1] room live numbers hash   ARGV[1] now (whole seconds since epoch)
-- KEYS[2] room presence zset       ARGV[2] danmaku this node sent since its last report
-- KEYS[3] room info hash           ARGV[3] now (ms)
-- Returns {online over all nodes, peak online, rehearsal (0|1)}.
-- Invariant: danmaku counts land in a ring of 8 one-second slots (d<i> count, t<i> its second),
-- so a slot is reset before it is reused; peak only grows (room_transition resets it at start).
local now, count = tonumber(ARGV[1]), tonumber(ARGV[2])
if count > 0 then
  local slot = tostring(now % 8)
  if tonumber(redis.call('HGET', KEYS[1], 't' .. slot) or -1) ~= now then
    redis.call('HSET', KEYS[1], 't' .. slot, now, 'd' .. slot, 0)
  end
  redis.call('HINCRBY', KEYS[1], 'd' .. slot, count)
  redis.call('HINCRBY', KEYS[1], 'danmaku', count)
end
local online = redis.call('ZCOUNT', KEYS[2], ARGV[3], '+inf')
local peak = tonumber(redis.call('HGET', KEYS[1], 'peak') or 0)
if online > peak then
  peak = online
  redis.call('HSET', KEYS[1], 'peak', peak)
end
local rehearsal = redis.call('HGET', KEYS[3], 'rehearsal') == '1' and 1 or 0
return {online, peak, rehearsal}
