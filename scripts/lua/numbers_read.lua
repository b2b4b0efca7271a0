-- numbers_read: a room's live numbers, summed over every node.
-- KEYS[1] room live numbers hash   ARGV[1] now (whole seconds since epoch)
-- KEYS[2] room presence zset       ARGV[2] window: how many whole seconds back the rate covers
-- KEYS[3] room state hash          ARGV[3] now (ms)
-- Returns {online, peak, likes, danmaku in the window, danmaku total}.
-- Invariant: the window covers the seconds now-window .. now-1 (complete seconds only); the
-- peak is raised to the current online count if that is higher.
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local online = redis.call('ZCOUNT', KEYS[2], ARGV[3], '+inf')
local peak = tonumber(redis.call('HGET', KEYS[1], 'peak') or 0)
if online > peak then
  peak = online
  redis.call('HSET', KEYS[1], 'peak', peak)
end
local recent = 0
for slot = 0, 7 do
  local t = tonumber(redis.call('HGET', KEYS[1], 't' .. slot) or -1)
  if t >= now - window and t < now then
    recent = recent + tonumber(redis.call('HGET', KEYS[1], 'd' .. slot) or 0)
  end
end
local likes = tonumber(redis.call('HGET', KEYS[3], 'likes') or 0)
return {online, peak, likes, recent, tonumber(redis.call('HGET', KEYS[1], 'danmaku') or 0)}
