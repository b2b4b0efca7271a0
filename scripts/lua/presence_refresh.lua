-- presence_refresh: a node's heartbeat for its viewers of one room, and a sweep of the gone.
-- KEYS[1] room presence zset (user -> presence deadline, ms)
-- KEYS[2] room entered hash (user -> time the person entered, ms)
-- KEYS[3] room unique-viewers HyperLogLog       KEYS[4] room live numbers hash (peak)
-- KEYS[5] room event stream
-- ARGV[1] now (ms)   ARGV[2] new deadline (now + grace, ms)   ARGV[3] event stream cap
-- ARGV[4] event id prefix (unique per call)   ARGV[5..] users present on the calling node
-- Returns {online people, earliest remaining deadline or 0}.
-- Invariant: a person whose deadline passed (no node refreshed them: they left, or their node
-- died) gets exactly one viewer.left, with the time they were present; refreshing a person who
-- was swept (a node stalled past the grace) enters them again.
local now, deadline, cap, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local grace = deadline - now
local n = 0
for i = 5, #ARGV do
  local user = ARGV[i]
  local prev = tonumber(redis.call('ZSCORE', KEYS[1], user) or '0')
  if prev < deadline then redis.call('ZADD', KEYS[1], deadline, user) end
  if prev == 0 then
    n = n + 1
    redis.call('HSET', KEYS[2], user, now)
    redis.call('PFADD', KEYS[3], user)
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', cap, '*', 'id', prefix .. '-e' .. n,
      'type', 'viewer.entered', 'ts', now, 'data', cjson.encode({user = user}))
  end
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
for _, user in ipairs(gone) do
  n = n + 1
  local seen = tonumber(redis.call('ZSCORE', KEYS[1], user)) - grace  -- last refreshed
  local since = tonumber(redis.call('HGET', KEYS[2], user) or seen)
  redis.call('ZREM', KEYS[1], user)
  redis.call('HDEL', KEYS[2], user)
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', cap, '*', 'id', prefix .. '-l' .. n,
    'type', 'viewer.left', 'ts', seen,
    'data', cjson.encode({user = user, watch_ms = math.max(0, seen - since)}))
end
local online = redis.call('ZCOUNT', KEYS[1], now, '+inf')
if online > tonumber(redis.call('HGET', KEYS[4], 'peak') or '0') then
  redis.call('HSET', KEYS[4], 'peak', online)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {online, tonumber(first[2] or '0')}
