-- coupon_claim: decide a batch of coupon claims of one batch, atomically, in arrival order.
-- KEYS[1] batch info hash                ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] batch requests hash            ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] batch users hash (user->coupon) ARGV[3] event id prefix (24 hex; + 8 hex per event)
-- KEYS[4] room banned set                ARGV[4] batch id
-- KEYS[5] room event stream              ARGV[5..] one triple per claim: user, request key,
-- KEYS[6] room state hash                          source. The request key is "i<int>" or
--                                                  "s<string>" for a viewer's rid, "h<share id>"
--                                                  for a share grant (source share).
-- Returns {left, quantity, ver, all_claimed_now, kind, value, threshold, valid_until, title,
--   product, then per claim: code, coupon id, replayed}
--   code: ok | already_claimed (with the user's coupon) | all_claimed | not_started | ended |
--   banned | duplicate (a share id reported again for another user) | unknown_batch (an
--   unknown batch returns left = -1 and records nothing).
-- Checks, in order: an earlier answer to the same (user, request key) is returned again
-- (replayed = 1); the window (viewers: the batch is live and its claim window open; shares: the
-- batch is not ended and still valid); the room ban; one coupon per user and batch; the
-- quantity left. A grant takes one from `left`, gives the user the coupon "<batch>.<n>" and
-- appends `coupon.granted` to the room's event stream, in this script; every decision is
-- recorded under (user, request key) ("\nh<share id>" for a share: one decision per share id),
-- so a retry on any node gets the first answer.
-- Invariant: quantity = left + granted; left >= 0; at most one coupon per user and batch;
-- exactly one coupon.granted event per coupon; a request is decided at most once.
--!include lib/promo.lua
local b = redis.call('HMGET', KEYS[1], 'state', 'quantity', 'left', 'granted', 'ver',
  'valid_until', 'claim_until', 'kind', 'value', 'threshold', 'title', 'so', 'expire_at',
  'product')
local out
if not b[1] then
  out = {-1, 0, 0, 0, '', 0, 0, 0, '', ''}
  for i = 5, #ARGV, 3 do
    out[#out + 1] = 'unknown_batch'; out[#out + 1] = ''; out[#out + 1] = 0
  end
  return out
end
local now, batch = pr_now(ARGV[1]), ARGV[4]
local state, quantity, left, granted = b[1], tonumber(b[2]), tonumber(b[3]), tonumber(b[4])
local ver0 = tonumber(b[5])
local ver, left0 = ver0, left
local valid_until, claim_until = tonumber(b[6]), tonumber(b[7] or '0')
local value, threshold = tonumber(b[9]), tonumber(b[10])
local viewer_closed, grant_closed = false, false
if state == 'created' or state == 'scheduled' then
  viewer_closed = 'not_started'
elseif state ~= 'live' or now >= claim_until then
  viewer_closed = 'ended'
end
if state == 'ended' or now >= valid_until then grant_closed = 'ended' end
out = {0, quantity, 0, 0, b[8], value, threshold, valid_until, b[11], b[14] or ''}
local events = 0
for i = 5, #ARGV, 3 do
  local user, rkey, source = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local req = user .. '\n' .. rkey
  if source == 'share' then req = '\n' .. rkey end -- one decision per share id, whoever
  local prev = redis.call('HGET', KEYS[2], req)
  local code, coupon, replayed = nil, '', 0
  if prev then
    local puser
    code, coupon, puser = string.match(prev, '^([^\t]*)\t([^\t]*)\t?(.*)$')
    if source == 'share' and puser ~= user then
      code, coupon = 'duplicate', '' -- the share id was used for another user
    else
      replayed = 1
    end
  else
    if source == 'viewer' then code = viewer_closed else code = grant_closed end
    if not code and redis.call('SISMEMBER', KEYS[4], user) == 1 then code = 'banned' end
    if not code then
      local have = redis.call('HGET', KEYS[3], user)
      if have then
        code, coupon = 'already_claimed', have
      elseif left <= 0 then
        code = 'all_claimed'
      else
        code = 'ok'
        left, granted, ver = left - 1, granted + 1, ver + 1
        coupon = batch .. '.' .. granted
        redis.call('HSET', KEYS[3], user, coupon)
        events = events + 1
        local data = {batch = batch, coupon = coupon, user = user, source = source,
          kind = b[8], value = value, threshold = threshold, valid_until = valid_until,
          title = b[11] ~= '' and b[11] or nil, product = (b[14] or '') ~= '' and b[14] or nil}
        if source == 'share' then data.share_id = string.sub(rkey, 2)
        else data.rid = string.sub(rkey, 2) end
        pr_event(KEYS[5], ARGV[2], ARGV[3] .. string.format('%08x', events), now,
          'coupon.granted', data)
      end
    end
    redis.call('HSET', KEYS[2], req,
      code .. '\t' .. coupon .. (source == 'share' and ('\t' .. user) or ''))
  end
  out[#out + 1] = code; out[#out + 1] = coupon; out[#out + 1] = replayed
end
if #ARGV >= 5 and b[13] then
  redis.call('PEXPIREAT', KEYS[2], b[13])
  redis.call('PEXPIREAT', KEYS[3], b[13])
end
if ver ~= ver0 then
  local fields = {'left', left, 'granted', granted, 'ver', ver}
  if left == 0 and left0 > 0 and b[12] ~= '1' then
    out[4] = 1
    fields[#fields + 1] = 'so'; fields[#fields + 1] = '1'
  end
  redis.call('HSET', KEYS[1], unpack(fields))
  if state == 'live' then
    redis.call('HSET', KEYS[6], 'cleft:' .. batch, cmsgpack.pack({left, quantity, ver}))
  end
end
out[1], out[3] = left, ver
return out
