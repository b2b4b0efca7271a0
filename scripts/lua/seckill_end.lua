-- seckill_end: stop a flash sale now (the anchor ends it early). Holds stay until confirmed,
-- cancelled or expired.
-- KEYS[1] sale hash          ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] room event stream  ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] room state hash    ARGV[3] event id (32 hex, the host's idempotency key)
--                            ARGV[4] sale id
-- Returns {code, already, left, stock, ver}; code: ok | unknown_sale. Ending an ended sale is ok
-- with already = 1 and no new event.
-- Invariant: an ended sale grants nothing more; one `seckill.ended` event per sale.
--!include lib/seckill.lua
local k = {sale = KEYS[1], events = KEYS[2], state = KEYS[3]}
local now, sale = sk_now(ARGV[1]), ARGV[4]
local c = sk_load(k.sale)
if not c then return {'unknown_sale', 0, -1, 0, 0} end
local ended = sk_end(k, c, sale, now, 'stopped', ARGV[2], ARGV[3])
return {'ok', ended and 0 or 1, c.left, c.stock, c.ver}
