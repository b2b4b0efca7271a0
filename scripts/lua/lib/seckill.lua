-- lib/seckill.lua: included (--!include) by the flash-sale scripts that change a sale after its
-- grabs: the hold record format, the counters, and giving a hold's units back.
-- A hold record (sale holds hash) is "state\tqty\texpires_ms\tuser\trequest key", state one of
-- held | sold | cancelled | released; only `held` holds are in the expiry sorted set.
-- k is a table of key names: sale, users, holds, expiry, events, state.
local function sk_now(arg)
  if arg == '' then
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return tonumber(arg)
end

local function sk_ms(x)
  return string.format('%.0f', x)
end

-- the sale's counters, or nil for an unknown sale
local function sk_load(sale_key)
  local s = redis.call('HMGET', sale_key, 'stock', 'left', 'held', 'sold', 'ver', 'state',
    'end', 'product', 'price', 'limit', 'start')
  if not s[1] then return nil end
  return {stock = tonumber(s[1]), left = tonumber(s[2]), held = tonumber(s[3]),
    sold = tonumber(s[4]), ver = tonumber(s[5]), state = s[6], ['end'] = tonumber(s[7]),
    product = s[8], price = tonumber(s[9]), limit = tonumber(s[10]), start = tonumber(s[11])}
end

-- write the counters back, and the live stock view viewers get in their snapshot
local function sk_save(k, sale, c)
  redis.call('HSET', k.sale, 'stock', c.stock, 'left', c.left, 'held', c.held, 'sold', c.sold,
    'ver', c.ver)
  if c.state == 'live' then
    redis.call('HSET', k.state, 'left:' .. sale, cmsgpack.pack({c.left, c.stock, c.ver}))
  end
end

local function sk_parse_hold(rec)
  local state, qty, exp, user, rid = string.match(rec, '^(%a+)\t(%d+)\t(%d+)\t([^\t]*)\t(.*)$')
  return state, tonumber(qty), tonumber(exp), user, rid
end

local function sk_event(k, maxlen, id, now, kind, data)
  redis.call('XADD', k.events, 'MAXLEN', '~', maxlen, '*', 'id', id, 'type', kind,
    'ts', sk_ms(now), 'data', cjson.encode(data))
end

-- give a held hold's units back to the sale (state becomes `new_state`) and report it
local function sk_return(k, c, sale, hold, qty, exp, user, rid, new_state, event)
  c.left, c.held, c.ver = c.left + qty, c.held - qty, c.ver + 1
  if redis.call('HINCRBY', k.users, user, -qty) <= 0 then redis.call('HDEL', k.users, user) end
  redis.call('HSET', k.holds, hold,
    new_state .. '\t' .. qty .. '\t' .. sk_ms(exp) .. '\t' .. user .. '\t' .. rid)
  redis.call('ZREM', k.expiry, hold)
  event.data.sale, event.data.product, event.data.hold = sale, c.product, hold
  event.data.user, event.data.qty = user, qty
  sk_event(k, event.maxlen, event.id, event.now, event.type, event.data)
end

-- the sale window has closed: mark it ended once, with its seckill.ended event; viewers' live
-- view of it goes away
local function sk_end(k, c, sale, now, reason, maxlen, id)
  if c.state ~= 'live' then return false end
  c.state = 'ended'
  redis.call('HSET', k.sale, 'state', 'ended', 'ended_at', sk_ms(now))
  redis.call('HDEL', k.state, 'sale:' .. sale, 'left:' .. sale)
  sk_event(k, maxlen, id, now, 'seckill.ended', {sale = sale, product = c.product,
    reason = reason, stock = c.stock, left = c.left, held = c.held, sold = c.sold})
  return true
end
