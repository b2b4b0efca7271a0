-- seckill_restock: add stock to a running flash sale.
-- KEYS[1] sale hash          ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] room event stream  ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] room state hash    ARGV[3] event id (32 hex, the host's idempotency key)
--                            ARGV[4] sale id      ARGV[5] units to add (> 0)
-- Returns {code, left, stock, ver}; code: ok | unknown_sale | ended (a closed sale is not
-- restocked). A restock re-arms the "sold out" announcement.
-- Invariant: stock and left grow by the same amount, so stock = left + held + sold still holds.
--!include lib/seckill.lua
local k = {sale = KEYS[1], events = KEYS[2], state = KEYS[3]}
local now, sale, add = sk_now(ARGV[1]), ARGV[4], tonumber(ARGV[5])
local c = sk_load(k.sale)
if not c then return {'unknown_sale', -1, 0, 0} end
if c.state ~= 'live' or now >= c['end'] then return {'ended', c.left, c.stock, c.ver} end
c.stock, c.left, c.ver = c.stock + add, c.left + add, c.ver + 1
sk_save(k, sale, c)
redis.call('HSET', k.sale, 'so', '0')
sk_event(k, ARGV[2], ARGV[3], now, 'seckill.restocked', {sale = sale, product = c.product,
  added = add, stock = c.stock, left = c.left})
return {'ok', c.left, c.stock, c.ver}
