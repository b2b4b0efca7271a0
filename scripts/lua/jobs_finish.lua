-- jobs_finish: a job is done, to be retried later, or cancelled; or its running node renews its
-- lease (a job that runs longer than one lease is not claimed by a second node meanwhile).
-- KEYS[1] due jobs zset (id -> due ms)      ARGV[1] job id
-- KEYS[2] leased jobs zset (id -> lease end) ARGV[2] mode: done | retry | cancel | renew
-- KEYS[3] job specs hash (id -> JSON)       ARGV[3] version the caller ran ('' for cancel)
--                                           ARGV[4] retry: when (ms); ARGV[5] retry: new spec;
--                                           renew: the new lease end (ms)
-- Returns 1 when the job changed, 0 when it was replaced meanwhile (or is gone; for renew: or its
-- lease is no longer held, i.e. it is due again or done).
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
if ARGV[2] == 'renew' then
  if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
    redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
    return 1
  end
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
