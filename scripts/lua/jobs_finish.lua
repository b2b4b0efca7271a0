-- jobs_finish: a job is done, to be retried later, or cancelled.
-- KEYS[1] due jobs zset (id -> due ms)      ARGV[1] job id
-- KEYS[2] leased jobs zset (id -> lease end) ARGV[2] mode: done | retry | cancel
-- KEYS[3] job specs hash (id -> JSON)       ARGV[3] version the caller ran ('' for cancel)
--                                           ARGV[4] retry: when (ms); ARGV[5] retry: new spec
-- Returns 1 when the job changed, 0 when it was replaced meanwhile (or is gone).
-- Invariant: only the version that was run can be finished or retried; cancel removes any version.
local spec = redis.call('HGET', KEYS[3], ARGV[1])
if not spec then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
if ARGV[2] ~= 'cancel' and cjson.decode(spec)['v'] ~= ARGV[3] then
  return 0
end
if ARGV[2] == 'retry' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
  return 1
end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
