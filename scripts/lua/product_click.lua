-- product_click: count a viewer's click on a product card (statistics and the host's behaviour
-- log).
-- KEYS[1] room products hash   ARGV[1] product id      ARGV[4] event id (32 hex)
-- KEYS[2] room clicks hash     ARGV[2] user id         ARGV[5] now (ms)
-- KEYS[3] room clickers set    ARGV[3] event stream cap (approximate MAXLEN)
-- KEYS[4] room event stream
-- Returns {clicks, first}: the product's click total and 1 if this was the user's first click
-- on it; {-1, 0} for a product the room does not have (nothing is counted).
-- Invariant: every click is counted; one `product.clicked` event per (user, product), at the
-- first click, so a clicking storm cannot flood the host's stream.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {-1, 0} end
local clicks = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local first = redis.call('SADD', KEYS[3], ARGV[1] .. '\n' .. ARGV[2])
if first == 1 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'id', ARGV[4],
    'type', 'product.clicked', 'ts', ARGV[5],
    'data', cjson.encode({product = ARGV[1], user = ARGV[2]}))
end
return {clicks, first}
