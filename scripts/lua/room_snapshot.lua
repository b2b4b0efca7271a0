-- room_snapshot: what a joining viewer needs, read in one step.
-- KEYS[1] room state hash   KEYS[2] room presence zset (user -> deadline, ms)
-- ARGV[1] now (ms)
-- Returns {online people, flat HGETALL of the state hash}.
-- Invariant: read-only.
return {redis.call('ZCOUNT', KEYS[2], ARGV[1], '+inf'), redis.call('HGETALL', KEYS[1])}
