-- antifraud_seen: remember that an account joined a room from an IP (and a device), and count
-- the distinct accounts seen from that IP and on that device within a window, over all nodes.
-- KEYS[1] sorted set of the accounts seen from the IP (user -> last join, ms)
-- KEYS[2] sorted set of the accounts seen on the device (optional: no device, no key)
-- ARGV[1] user id   ARGV[2] now in ms, or '' for the Redis clock   ARGV[3] window (ms)
-- Returns {accounts from the IP, accounts on the device (0 without KEYS[2])}.
-- Invariant: only joins within the window count; each set expires a window after its last join,
-- so the memory it takes is bounded by the joins of one window.
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[2])
end
local window = tonumber(ARGV[3])
local out = {0, 0}
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', string.format('%.0f', now - window))
  redis.call('ZADD', KEYS[i], string.format('%.0f', now), ARGV[1])
  redis.call('PEXPIRE', KEYS[i], window)
  out[i] = redis.call('ZCARD', KEYS[i])
end
return out
