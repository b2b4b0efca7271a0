-- seckill_cancel: the host cancels an unpaid hold: its units go back to the sale at once.
-- KEYS[1] sale hash          ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] sale users hash    ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] sale holds hash    ARGV[3] event id (32 hex, the host's idempotency key)
-- KEYS[4] sale expiry zset   ARGV[4] sale id
-- KEYS[5] room event stream  ARGV[5] hold id
-- KEYS[6] room state hash    ARGV[6] reason (free text, may be '')
-- Returns {code, already, user, qty, left, stock, ver}; code: ok | unknown_sale | unknown_hold |
-- hold_expired (its time had run out: released instead, with `seckill.released`) |
-- already_confirmed (a paid hold is not cancelled here). Cancelling twice is ok, already = 1.
-- Invariant: stock = left + held + sold; one `seckill.cancelled` event per cancelled hold; the
-- user's units go down with the hold, so the user may grab again.
--!include lib/seckill.lua
local k = {sale = KEYS[1], users = KEYS[2], holds = KEYS[3], expiry = KEYS[4], events = KEYS[5],
  state = KEYS[6]}
local now, sale, hold = sk_now(ARGV[1]), ARGV[4], ARGV[5]
local c = sk_load(k.sale)
if not c then return {'unknown_sale', 0, '', 0, -1, 0, 0} end
local rec = redis.call('HGET', k.holds, hold)
if not rec then return {'unknown_hold', 0, '', 0, c.left, c.stock, c.ver} end
local state, qty, exp, user, rid = sk_parse_hold(rec)
local function answer(code, already)
  return {code, already, user, qty, c.left, c.stock, c.ver}
end
if state == 'cancelled' then return answer('ok', 1) end
if state == 'sold' then return answer('already_confirmed', 0) end
if state == 'released' then return answer('hold_expired', 0) end
local event = {maxlen = ARGV[2], id = ARGV[3], now = now, type = 'seckill.cancelled',
  data = {reason = ARGV[6]}}
local code, new_state = 'ok', 'cancelled'
if exp <= now then
  code, new_state = 'hold_expired', 'released'
  event.type, event.data = 'seckill.released', {reason = 'expired', expires_at = exp}
end
sk_return(k, c, sale, hold, qty, exp, user, rid, new_state, event)
sk_save(k, sale, c)
return answer(code, 0)
