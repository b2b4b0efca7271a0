-- coupon_drop: drop a defined (or scheduled) coupon batch now: viewers may claim.
-- KEYS[1] batch info hash      ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] room state hash      ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] room event stream    ARGV[3] event id (the host's idempotency key)
--                              ARGV[4] batch id
-- Returns {code, already, claim_until}: code ok | unknown_batch | ended (stopped, or its
-- validity has passed); already = 1 when it was live before (nothing changes).
-- Invariant: a batch goes live at most once, with exactly one `coupon.dropped`.
--!include lib/promo.lua
--!include lib/coupon.lua
local b = redis.call('HMGET', KEYS[1], 'state', 'valid_until', 'claim_until')
if not b[1] then return {'unknown_batch', 0, 0} end
local now = pr_now(ARGV[1])
if b[1] == 'live' then return {'ok', 1, tonumber(b[3])} end
if b[1] == 'ended' or now >= tonumber(b[2]) then return {'ended', 0, 0} end
local claim_until = cp_drop(KEYS[1], KEYS[2], KEYS[3], ARGV[4], now, ARGV[2], ARGV[3])
return {'ok', 0, claim_until}
