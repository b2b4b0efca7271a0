-- seckill_confirm: the host confirms that a hold was paid: its units become sold.
-- KEYS[1] sale hash          ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] sale users hash    ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] sale holds hash    ARGV[3] event id (32 hex, the host's idempotency key)
-- KEYS[4] sale expiry zset   ARGV[4] sale id
-- KEYS[5] room event stream  ARGV[5] hold id
-- KEYS[6] room state hash    ARGV[6] the host's order id ('' for none)
-- Returns {code, already, user, qty, left, stock, ver}; code: ok | unknown_sale | unknown_hold |
-- hold_expired (not confirmed in time: its units went back, with `seckill.released`) |
-- hold_cancelled. Confirming a confirmed hold again is ok with already = 1 and no new event.
-- Invariant: stock = left + held + sold; one `seckill.confirmed` event per sold hold.
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
if state == 'sold' then return answer('ok', 1) end
if state == 'cancelled' then return answer('hold_cancelled', 0) end
if state == 'released' then return answer('hold_expired', 0) end
if exp <= now then
  sk_return(k, c, sale, hold, qty, exp, user, rid, 'released', {maxlen = ARGV[2], id = ARGV[3],
    now = now, type = 'seckill.released', data = {reason = 'expired', expires_at = exp}})
  sk_save(k, sale, c)
  return answer('hold_expired', 0)
end
c.held, c.sold = c.held - qty, c.sold + qty
redis.call('HSET', k.holds, hold, 'sold\t' .. qty .. '\t' .. sk_ms(exp) .. '\t' .. user .. '\t' .. rid)
redis.call('ZREM', k.expiry, hold)
sk_save(k, sale, c)
local data = {sale = sale, product = c.product, hold = hold, user = user, qty = qty,
  price = c.price}
if ARGV[6] ~= '' then data.order = ARGV[6] end
sk_event(k, ARGV[2], ARGV[3], now, 'seckill.confirmed', data)
return answer('ok', 0)
