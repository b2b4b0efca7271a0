-- coupon_end: close a batch's claims: stopped by the operator, or its claim window is over.
-- KEYS[1] batch info hash      ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] room state hash      ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] room event stream    ARGV[3] event id   ARGV[4] batch id
--                              ARGV[5] reason: stopped | time
-- Returns {code, already, left, quantity, claim_until}: code ok | unknown_batch | not_due (time:
-- the window is still open until claim_until; nothing changes).
-- Invariant: a batch ends at most once, with one `coupon.ended`; its snapshot view goes away.
--!include lib/promo.lua
local b = redis.call('HMGET', KEYS[1], 'state', 'left', 'quantity', 'granted', 'claim_until')
if not b[1] then return {'unknown_batch', 0, 0, 0, 0} end
local left, quantity = tonumber(b[2]), tonumber(b[3])
if b[1] == 'ended' then return {'ok', 1, left, quantity, 0} end
local now, reason = pr_now(ARGV[1]), ARGV[5]
if reason == 'time' and (b[1] ~= 'live' or now < tonumber(b[5] or '0')) then
  return {'not_due', 0, left, quantity, tonumber(b[5] or '0')}
end
redis.call('HSET', KEYS[1], 'state', 'ended', 'ended_at', pr_ms(now))
redis.call('HDEL', KEYS[2], 'coupon:' .. ARGV[4], 'cleft:' .. ARGV[4])
pr_event(KEYS[3], ARGV[2], ARGV[3], now, 'coupon.ended', {batch = ARGV[4], reason = reason,
  was = b[1], quantity = quantity, granted = tonumber(b[4]), left = left})
return {'ok', 0, left, quantity, 0}
