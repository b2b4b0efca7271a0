-- seckill_start: create a flash sale on one of the room's products.
-- KEYS[1] sale hash          ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] room products hash ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] room event stream  ARGV[3] event id (32 hex, the host's idempotency key)
-- KEYS[4] room state hash    ARGV[4] sale id      ARGV[5] product id
-- KEYS[5] room sales set     ARGV[6] sale price   ARGV[7] stock      ARGV[8] per-user limit
--                            ARGV[9] start (ms)   ARGV[10] end (ms)  ARGV[11] hold time (ms)
--                            ARGV[12] the sale as viewers see it (msgpack, for snapshots)
--                            ARGV[13] the seckill.started event data (JSON)
-- Returns {code, left, stock, ver}; code: ok | sale_exists (the sale id is taken: nothing
-- changes) | unknown_product.
-- Invariant: a sale starts with stock = left and nothing held or sold; its id is never reused
-- while its keys exist.
--!include lib/seckill.lua
if redis.call('EXISTS', KEYS[1]) == 1 then return {'sale_exists', 0, 0, 0} end
if redis.call('HEXISTS', KEYS[2], ARGV[5]) == 0 then return {'unknown_product', 0, 0, 0} end
local now, sale, stock = sk_now(ARGV[1]), ARGV[4], tonumber(ARGV[7])
redis.call('HSET', KEYS[1], 'product', ARGV[5], 'price', ARGV[6], 'stock', stock, 'left', stock,
  'held', 0, 'sold', 0, 'limit', ARGV[8], 'start', ARGV[9], 'end', ARGV[10], 'hold_ms', ARGV[11],
  'ver', 1, 'granted', 0, 'state', 'live', 'so', stock > 0 and '0' or '1',
  'created_at', sk_ms(now))
redis.call('SADD', KEYS[5], sale)
redis.call('HSET', KEYS[4], 'sale:' .. sale, ARGV[12], 'left:' .. sale,
  cmsgpack.pack({stock, stock, 1}))
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'id', ARGV[3], 'type', 'seckill.started',
  'ts', sk_ms(now), 'data', ARGV[13])
return {'ok', stock, stock, 1}
