-- coupon_create: define a coupon batch of the room; optionally drop it at once.
-- KEYS[1] batch info hash      ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] room coupons set     ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] room event stream    ARGV[3] event id prefix (24 hex; + 8 hex per event)
-- KEYS[4] room state hash      ARGV[4] batch id   ARGV[5] kind   ARGV[6] value
--                              ARGV[7] threshold  ARGV[8] quantity  ARGV[9] valid until (ms)
--                              ARGV[10] claim window after the drop (ms, 0: until valid until)
--                              ARGV[11] title     ARGV[12] state: created | scheduled | live
--                              ARGV[13] drop at (ms, scheduled) ARGV[14] keep keys until (ms)
--                              ARGV[15] product (a fixed coupon's; '' for others)
-- Returns {code, claim_until}: code ok | batch_exists (nothing changes).
-- Writes `coupon.created` (and `coupon.dropped` when it goes live at once).
-- Invariant: a batch starts with left = quantity and nothing granted; its id is never reused
-- while its keys exist.
--!include lib/promo.lua
--!include lib/coupon.lua
if redis.call('EXISTS', KEYS[1]) == 1 then return {'batch_exists', 0} end
local now, batch, state = pr_now(ARGV[1]), ARGV[4], ARGV[12]
local quantity = tonumber(ARGV[8])
redis.call('HSET', KEYS[1], 'kind', ARGV[5], 'value', ARGV[6], 'threshold', ARGV[7],
  'quantity', quantity, 'left', quantity, 'granted', 0, 'ver', 1, 'valid_until', ARGV[9],
  'claim_ms', ARGV[10], 'title', ARGV[11], 'state', state == 'live' and 'created' or state,
  'drop_at', ARGV[13], 'so', '0', 'created_at', pr_ms(now), 'expire_at', ARGV[14],
  'product', ARGV[15])
redis.call('PEXPIREAT', KEYS[1], ARGV[14])
redis.call('SADD', KEYS[2], batch)
pr_event(KEYS[3], ARGV[2], ARGV[3] .. '00000001', now, 'coupon.created', {batch = batch,
  kind = ARGV[5], value = tonumber(ARGV[6]), threshold = tonumber(ARGV[7]), quantity = quantity,
  valid_until = tonumber(ARGV[9]), claim_s = tonumber(ARGV[10]) / 1000, title = ARGV[11] ~= '' and ARGV[11] or nil,
  state = state, drop_at = state == 'scheduled' and tonumber(ARGV[13]) or nil,
  product = ARGV[15] ~= '' and ARGV[15] or nil})
local claim_until = 0
if state == 'live' then
  claim_until = cp_drop(KEYS[1], KEYS[4], KEYS[3], batch, now, ARGV[2], ARGV[3] .. '00000002')
end
return {'ok', claim_until}
