-- seckill_release: the expiry sweeper's step for one sale: give back the stock of holds not
-- confirmed in time, close the sale once its window is over, and finish it when nothing is held.
-- KEYS[1] sale hash          ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] sale users hash    ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] sale holds hash    ARGV[3] event id prefix (24 hex; + 8 hex per event)
-- KEYS[4] sale expiry zset   ARGV[4] sale id
-- KEYS[5] room event stream  ARGV[5] most holds to release in this call
-- KEYS[6] room state hash    ARGV[6] seconds to keep a finished sale's keys
-- KEYS[7] room sales set
-- KEYS[8] sale requests hash
-- KEYS[9] sale winners set
-- Returns {released, left, stock, ver, more, finished}: `more` = 1 when expired holds are left
-- for another call; `finished` = 1 when the sale is over with nothing held (or unknown): its
-- keys then expire after ARGV[6] seconds and it leaves the room's sales set.
-- Each released hold gets one `seckill.released` event; an ending sale one `seckill.ended`.
-- Invariant: stock = left + held + sold; a hold is released at most once, and only after its
-- expiry.
--!include lib/seckill.lua
local k = {sale = KEYS[1], users = KEYS[2], holds = KEYS[3], expiry = KEYS[4], events = KEYS[5],
  state = KEYS[6]}
local now, maxlen, prefix, sale = sk_now(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local c = sk_load(k.sale)
if not c then
  redis.call('SREM', KEYS[7], sale)
  return {0, -1, 0, 0, 0, 1}
end
local expired = redis.call('ZRANGEBYSCORE', k.expiry, '-inf', sk_ms(now), 'LIMIT', 0,
  tonumber(ARGV[5]))
local released, events = 0, 0
for _, hold in ipairs(expired) do
  local rec = redis.call('HGET', k.holds, hold)
  local state, qty, exp, user, rid
  if rec then state, qty, exp, user, rid = sk_parse_hold(rec) end
  if state == 'held' then
    events = events + 1
    sk_return(k, c, sale, hold, qty, exp, user, rid, 'released', {maxlen = maxlen,
      id = prefix .. string.format('%08x', events), now = now, type = 'seckill.released',
      data = {reason = 'expired', expires_at = exp}})
    released = released + 1
  else
    redis.call('ZREM', k.expiry, hold)
  end
end
if released > 0 then sk_save(k, sale, c) end
if now >= c['end'] then
  events = events + 1
  sk_end(k, c, sale, now, 'time', maxlen, prefix .. string.format('%08x', events))
end
local more = (#expired == tonumber(ARGV[5])) and 1 or 0
local finished = 0
if c.state ~= 'live' and c.held == 0 then
  finished = 1
  redis.call('SREM', KEYS[7], sale)
  local ttl = tonumber(ARGV[6])
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
  redis.call('EXPIRE', KEYS[8], ttl)
  redis.call('EXPIRE', KEYS[9], ttl)
end
return {released, c.left, c.stock, c.ver, more, finished}
