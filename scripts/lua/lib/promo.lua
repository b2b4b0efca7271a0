-- lib/promo.lua: included (--!include) by the coupon, follow and lottery scripts: the clock
-- (Redis's own, unless a test passes the time) and the host event append.
local function pr_now(arg)
  if arg == '' then
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return tonumber(arg)
end

local function pr_ms(x)
  return string.format('%.0f', x)
end

-- append one host event (fields id/type/ts/data) to the room's capped event stream
local function pr_event(stream, maxlen, id, now, kind, data)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'id', id, 'type', kind,
    'ts', pr_ms(now), 'data', type(data) == 'string' and data or cjson.encode(data))
end
