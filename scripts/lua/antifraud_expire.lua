-- antifraud_expire: lift the sanctions (bans, mutes, grab refusals) of one scope whose time is up.
-- KEYS[1] sanctions hash     KEYS[2] sanction expiry sorted set
-- KEYS[3] room banned set (room scope only)    KEYS[4] room event stream (room scope only)
-- ARGV[1] now in ms, or '' for the Redis clock   ARGV[2] most sanctions to lift in this call
-- ARGV[3] event stream cap   ARGV[4] event id prefix (24 hex; + 8 hex per event)
-- Returns {the lifted "<kind>:<user>" fields..., then as the last item the next expiry (ms) of
--   what is left, or 0}.
-- Invariant: a sanction is lifted once (its `user.un*` event, room scope, is written once), never
-- before its time; the banned set loses exactly the users whose room ban is lifted.
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[1])
end
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now),
  'LIMIT', 0, tonumber(ARGV[2]))
local lifted = {}
local types = {ban = 'user.unbanned', mute = 'user.unmuted', nograb = 'user.grabs_restored'}
for n, field in ipairs(due) do
  local kind, user = string.match(field, '^(%a+):(.*)$')
  redis.call('ZREM', KEYS[2], field)
  if redis.call('HDEL', KEYS[1], field) == 1 then
    if KEYS[3] and kind == 'ban' then redis.call('SREM', KEYS[3], user) end
    if KEYS[4] then
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*',
        'id', ARGV[4] .. string.format('%08x', n), 'type', types[kind] or 'user.unsanctioned',
        'ts', string.format('%.0f', now),
        'data', cjson.encode({user = user, kind = kind, reason = 'expired', by = 'expiry'}))
    end
    lifted[#lifted + 1] = field
  end
end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
lifted[#lifted + 1] = nxt[2] and tonumber(nxt[2]) or 0
return lifted
