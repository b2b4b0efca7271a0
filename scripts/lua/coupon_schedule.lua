-- coupon_schedule: (re)schedule the drop of a defined batch.
-- KEYS[1] batch info hash      ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] room event stream    ARGV[2] event stream cap (approximate MAXLEN)
--                              ARGV[3] event id   ARGV[4] batch id   ARGV[5] drop at (ms)
-- Returns {code, state}: code ok | unknown_batch | bad_state (already live) | ended.
-- Invariant: only a batch not yet dropped is scheduled; each (re)schedule writes one
-- `coupon.scheduled`.
--!include lib/promo.lua
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'unknown_batch', ''} end
if state == 'live' then return {'bad_state', state} end
if state == 'ended' then return {'ended', state} end
local now = pr_now(ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'scheduled', 'drop_at', ARGV[5])
pr_event(KEYS[2], ARGV[2], ARGV[3], now, 'coupon.scheduled', {batch = ARGV[4],
  drop_at = tonumber(ARGV[5])})
return {'ok', 'scheduled'}
