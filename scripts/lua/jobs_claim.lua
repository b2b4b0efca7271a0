-- jobs_claim: a node takes the jobs that are due (and those whose lease ran out) for a while.
-- KEYS[1] due jobs zset (id -> due ms)      ARGV[1] now (ms since epoch)
-- KEYS[2] leased jobs zset (id -> lease end) ARGV[2] lease end for what is claimed now (ms)
-- KEYS[3] job specs hash (id -> JSON)       ARGV[3] most jobs to claim
-- Returns the claimed jobs' specs (JSON strings).
-- Invariant: a claimed job is invisible to every other claim until its lease ends: two nodes
-- never run the same job at once, and a job whose node died is claimed again after its lease.
local limit = tonumber(ARGV[3])
local ids = redis.call('ZRANGE', KEYS[2], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, limit)
if #ids < limit then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0,
      limit - #ids)) do
    ids[#ids + 1] = id
  end
end
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local spec = redis.call('HGET', KEYS[3], id)
  if spec then
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    out[#out + 1] = spec
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
