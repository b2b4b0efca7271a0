-- ratelimit: GCRA rate limits (generic cell rate algorithm) for a batch of requests, decided in
-- order; each request is charged on one or more keys (e.g. per user, per IP, per device).
-- KEYS[1], KEYS[2], ... limit keys; each holds its theoretical arrival time (TAT) in microseconds and
--            expires at that time (PXAT), when it no longer limits anything
-- ARGV[1] now in ms (may be fractional), or '' to use the Redis clock. Keys expire on the Redis
--         clock at their TAT, so a given `now` must not lie in the past (tests use the future)
-- ARGV[2..] per request: cost (units, >= 1), number of keys m, then m triples:
--           key index into KEYS, emission interval (microseconds per unit), burst (units)
-- Returns per request three integers: allowed (1 | 0), retry_after_ms (0 when allowed; -1 when
--   the cost is over a key's burst: it can never pass at that size), and the position (1..m) of
--   the key that refused it for longest (0 when allowed).
-- A key allows a request of cost c when TAT' = max(TAT, now) + c * interval satisfies
-- TAT' - burst * interval <= now; then TAT' is stored.
-- Invariant: over any span of time of length t, a key lets through at most
-- burst + t / interval units; a request is charged on all of its keys or on none (a refused
-- request costs nothing); a client that keeps at or under the rate is never refused.
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = math.floor(tonumber(ARGV[1]) * 1000)
end
local out = {}
local i = 2
while i <= #ARGV do
  local cost, m = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  local pending, wait, worst = {}, 0, 0
  for j = 1, m do
    local k, interval, burst = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    i = i + 3
    local tat = tonumber(redis.call('GET', KEYS[k]) or '0')
    if tat < now then tat = now end
    local new_tat = tat + cost * interval
    if cost > burst then
      wait, worst = -1, j
    elseif wait >= 0 then
      local early = new_tat - burst * interval - now
      if early > 0 and early > wait then wait, worst = early, j end
    end
    pending[j] = {k, new_tat}
  end
  if worst == 0 then
    for _, p in ipairs(pending) do
      redis.call('SET', KEYS[p[1]], string.format('%.0f', p[2]),
        'PXAT', string.format('%.0f', math.ceil(p[2] / 1000) + 1))
    end
    out[#out + 1] = 1; out[#out + 1] = 0; out[#out + 1] = 0
  else
    out[#out + 1] = 0
    out[#out + 1] = wait < 0 and -1 or math.ceil(wait / 1000)
    out[#out + 1] = worst
  end
end
return out
