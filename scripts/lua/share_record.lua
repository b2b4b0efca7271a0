-- share_record: record a share the host reports, once per host share id.
-- KEYS[1] room shares hash (share id -> ms)   ARGV[1] event stream cap (approximate MAXLEN)
-- KEYS[2] room event stream                  ARGV[2] event id (unique, the host's idempotency key)
--                                            ARGV[3] now (ms since epoch)
--                                            ARGV[4] the host's share id
--                                            ARGV[5] event payload (JSON)
-- Returns 1 when the share is new, 0 when that share id was recorded before (nothing written).
-- Invariant: one share.recorded event per host share id.
if redis.call('HSETNX', KEYS[1], ARGV[4], ARGV[3]) == 0 then
  return 0
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*',
  'id', ARGV[2], 'type', 'share.recorded', 'ts', ARGV[3], 'data', ARGV[5])
return 1
