-- lib/coupon.lua: included (--!include) by the coupon scripts that open a batch for claims.
-- Needs lib/promo.lua first.
-- cp_drop(info, state, events, batch, now, maxlen, event_id): the batch goes live: claims are
-- open until claim_until = min(valid_until, now + claim_ms) (claim_ms 0: until valid_until); the
-- room state gets its view (coupon:<batch>) and live count (cleft:<batch>) for snapshots, and
-- `coupon.dropped` is written. Returns claim_until.
local function cp_drop(info, state, events, batch, now, maxlen, event_id)
  local b = redis.call('HMGET', info, 'quantity', 'left', 'ver', 'valid_until', 'claim_ms', 'kind',
    'value', 'threshold', 'title', 'product')
  local claim_until = tonumber(b[4])
  local claim_ms = tonumber(b[5])
  if claim_ms > 0 and now + claim_ms < claim_until then claim_until = now + claim_ms end
  redis.call('HSET', info, 'state', 'live', 'dropped_at', pr_ms(now), 'claim_until',
    pr_ms(claim_until))
  local view = {batch = batch, title = b[9] ~= '' and b[9] or nil, kind = b[6], value = tonumber(b[7]),
    threshold = tonumber(b[8]), quantity = tonumber(b[1]), valid_until = tonumber(b[4]),
    claim_until = claim_until, product = (b[10] or '') ~= '' and b[10] or nil}
  redis.call('HSET', state, 'coupon:' .. batch, cmsgpack.pack(view),
    'cleft:' .. batch, cmsgpack.pack({tonumber(b[2]), tonumber(b[1]), tonumber(b[3])}))
  pr_event(events, maxlen, event_id, now, 'coupon.dropped', {batch = batch,
    quantity = tonumber(b[1]), left = tonumber(b[2]), claim_until = claim_until})
  return claim_until
end
