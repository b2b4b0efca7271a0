-- presence_enter: a viewer connection of `user` opened on some node.
-- KEYS[1] room presence zset (user -> presence deadline, ms)
-- KEYS[2] room entered hash (user -> time the person entered, ms)
-- KEYS[3] room unique-viewers HyperLogLog       KEYS[4] room live numbers hash (peak)
-- KEYS[5] room event stream
-- ARGV[1] now (ms)   ARGV[2] presence deadline (now + grace, ms)   ARGV[3] user
-- ARGV[4] event stream cap   ARGV[5] event id   ARGV[6] event payload (JSON, for viewer.entered)
-- Returns {online people, 1 if the person entered now else 0}.
-- Invariant: one viewer.entered per person per presence (tabs, devices and quick reconnects of a
-- present person add none); online counts people whose deadline has not passed.
local now, user = tonumber(ARGV[1]), ARGV[3]
local prev = tonumber(redis.call('ZSCORE', KEYS[1], user) or '0')
local deadline = math.max(prev, tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], deadline, user)
local entered = 0
if prev < now then
  -- absent, or gone without having been swept yet: a new presence either way
  if prev > 0 then
    local seen = prev - (tonumber(ARGV[2]) - now)  -- when it was last refreshed
    local since = tonumber(redis.call('HGET', KEYS[2], user) or seen)
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', 'id', ARGV[5] .. '-left',
      'type', 'viewer.left', 'ts', seen,
      'data', cjson.encode({user = user, watch_ms = math.max(0, seen - since)}))
  end
  redis.call('HSET', KEYS[2], user, now)
  redis.call('PFADD', KEYS[3], user)
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', 'id', ARGV[5], 'type', 'viewer.entered',
    'ts', now, 'data', ARGV[6])
  entered = 1
end
local online = redis.call('ZCOUNT', KEYS[1], now, '+inf')
if online > tonumber(redis.call('HGET', KEYS[4], 'peak') or '0') then
  redis.call('HSET', KEYS[4], 'peak', online)
end
return {online, entered}
