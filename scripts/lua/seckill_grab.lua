-- seckill_grab: decide a batch of flash-sale grabs of one sale, atomically, in arrival order.
-- KEYS[1] sale hash (settings, counters)     ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] sale requests hash (user\nrid)     ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] sale users hash (user -> units)    ARGV[3] event id prefix (24 hex; + 8 hex per event)
-- KEYS[4] sale holds hash                    ARGV[4] sale id
-- KEYS[5] sale expiry sorted set             ARGV[5..] one triple per grab: user, request key
-- KEYS[6] sale winners set                             ("i<int>" or "s<string>"), quantity
-- KEYS[7] room banned set
-- KEYS[8] room event stream
-- KEYS[9] room state hash (field left:<sale> = msgpack {left, stock, ver})
-- Returns {left, stock, ver, sold_out_now, then per grab: code, hold id, expires_at, replayed}
--   code: ok | sold_out | limit_reached | not_started | ended | banned | duplicate | unknown_sale
--   (an unknown sale returns left = -1 and unknown_sale for every grab, recording nothing).
-- Checks, in order: an earlier answer to the same (user, request) is returned again (replayed=1;
-- `duplicate` if it asked for another quantity); the sale window; the ban; the per-user limit
-- (units held + sold + asked <= limit); the stock. A grant takes the units from `left` into
-- `held`, records the hold (expiry in the sorted set) and appends `seckill.reserved` to the room's
-- event stream; every decision is recorded under (user, request) so a retry gets it again.
-- Invariant: stock = left + held + sold; left >= 0; no user's units exceed the limit; exactly one
-- seckill.reserved event per hold; a request is decided at most once.
local now = ARGV[1]
if now == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(now)
end
local s = redis.call('HMGET', KEYS[1], 'stock', 'left', 'held', 'limit', 'start', 'end',
  'hold_ms', 'ver', 'granted', 'state', 'so', 'product', 'price')
local out = {}
if not s[1] then
  out = {-1, 0, 0, 0}
  for i = 5, #ARGV, 3 do
    out[#out + 1] = 'unknown_sale'; out[#out + 1] = ''; out[#out + 1] = 0; out[#out + 1] = 0
  end
  return out
end
local stock, left, held = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
local limit, hold_ms = tonumber(s[4]), tonumber(s[7])
local ver0 = tonumber(s[8])
local ver, granted = ver0, tonumber(s[9])
local left0, sale, price = left, ARGV[4], tonumber(s[13])
local closed = false
if s[10] ~= 'live' or now >= tonumber(s[6]) then
  closed = 'ended'
elseif now < tonumber(s[5]) then
  closed = 'not_started'
end
local events = 0
out = {0, 0, 0, 0}
for i = 5, #ARGV, 3 do
  local user, rid, qty = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local rkey = user .. '\n' .. rid
  local prev = redis.call('HGET', KEYS[2], rkey)
  local code, hold, exp, replayed = nil, '', 0, 0
  if prev then
    local pq, pcode, phold, pexp = string.match(prev, '^(%d+)\t([^\t]*)\t([^\t]*)\t(%d+)$')
    if tonumber(pq) == qty then
      code, hold, exp, replayed = pcode, phold, tonumber(pexp), 1
    else
      code = 'duplicate'
    end
  else
    code = closed
    if not code and redis.call('SISMEMBER', KEYS[7], user) == 1 then code = 'banned' end
    if not code then
      local have = tonumber(redis.call('HGET', KEYS[3], user) or '0')
      if have + qty > limit then
        code = 'limit_reached'
      elseif left < qty then
        code = 'sold_out'
      end
    end
    if code then
      redis.call('HSET', KEYS[2], rkey, qty .. '\t' .. code .. '\t\t0')
    else
      code = 'ok'
      left, held = left - qty, held + qty
      granted, ver = granted + 1, ver + 1
      hold = sale .. '.' .. granted
      exp = now + hold_ms
      local exps = string.format('%.0f', exp)
      redis.call('HINCRBY', KEYS[3], user, qty)
      redis.call('HSET', KEYS[4], hold, 'held\t' .. qty .. '\t' .. exps .. '\t' .. user .. '\t' .. rid)
      redis.call('ZADD', KEYS[5], exps, hold)
      redis.call('SADD', KEYS[6], user)
      events = events + 1
      redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[2], '*',
        'id', ARGV[3] .. string.format('%08x', events), 'type', 'seckill.reserved',
        'ts', string.format('%.0f', now), 'data', cjson.encode({
          sale = sale, product = s[12], hold = hold, user = user, rid = string.sub(rid, 2),
          qty = qty, price = price, expires_at = exp}))
      redis.call('HSET', KEYS[2], rkey, qty .. '\tok\t' .. hold .. '\t' .. exps)
    end
  end
  out[#out + 1] = code; out[#out + 1] = hold; out[#out + 1] = exp; out[#out + 1] = replayed
end
if ver ~= ver0 then
  local fields = {'left', left, 'held', held, 'ver', ver, 'granted', granted}
  if left == 0 and left0 > 0 and s[11] ~= '1' then
    out[4] = 1
    fields[#fields + 1] = 'so'; fields[#fields + 1] = '1'
  end
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('HSET', KEYS[9], 'left:' .. sale, cmsgpack.pack({left, stock, ver}))
end
out[1], out[2], out[3] = left, stock, ver
return out
