-- jobs_schedule: add or replace a durable job (reminders, later coupon drops, lottery draws).
-- KEYS[1] due jobs zset (id -> due ms)      ARGV[1] job id
-- KEYS[2] leased jobs zset (id -> lease end) ARGV[2] due time (ms since epoch)
-- KEYS[3] job specs hash (id -> JSON)       ARGV[3] job spec (JSON, with a fresh version `v`)
-- Returns 1.
-- Invariant: a job id is in at most one of due/leased; replacing a job that a node is running
-- makes it due again under a new version, and that node's finish (old version) changes nothing.
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
