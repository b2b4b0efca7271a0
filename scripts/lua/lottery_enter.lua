-- lottery_enter: enter a batch of users into one open lottery (once per user), in arrival order.
-- KEYS[1] lottery info hash         ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] lottery entrants zset     ARGV[2] lottery id
-- KEYS[3] lottery names hash        ARGV[3..] one triple per entry: user, how, display name
-- KEYS[4] room state hash                     ('' for none). how: keyword (a danmaku), follow,
-- KEYS[5] room followers hash                 button (an explicit `lottery_enter`)
-- KEYS[6] room banned set
-- Returns {count, ver, then per entry: code, new}: count and ver after the whole batch; code ok
--   (new = 1 when the user was not entered before, by an earlier call or earlier in this batch)
--   | unknown_lottery (count = ver = 0) | lottery_closed (not open, or its draw time has come; a
--   keyword-only lottery and a follow) | follow_required (a follow-only lottery and the user has
--   not followed) | banned. Each entry is decided exactly as if it came alone, one after another.
-- Invariant: an entrant is in the set at most once (every score 0: the set reads in byte
-- order); nothing enters once the lottery is frozen, drawn or cancelled, or at or after its
-- draw time; count = the size of the entrant set.
--!include lib/promo.lua
local l = redis.call('HMGET', KEYS[1], 'state', 'entry', 'draw_at', 'count', 'ver')
local out = {0, 0}
if not l[1] then
  for i = 3, #ARGV, 3 do
    out[#out + 1] = 'unknown_lottery'; out[#out + 1] = 0
  end
  return out
end
local count, ver = tonumber(l[4]), tonumber(l[5])
local count0 = count
local now, entry = pr_now(ARGV[1]), l[2]
local draw_at = tonumber(l[3])
local closed = l[1] ~= 'open' or (draw_at > 0 and now >= draw_at)
for i = 3, #ARGV, 3 do
  local user, how, name = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local code, new = 'ok', 0
  if closed then
    code = 'lottery_closed'
  elseif redis.call('SISMEMBER', KEYS[6], user) == 1 then
    code = 'banned'
  elseif entry == 'keyword' and how == 'follow' then
    code = 'lottery_closed'
  elseif entry == 'follow' and how ~= 'follow' and redis.call('HEXISTS', KEYS[5], user) == 0 then
    code = 'follow_required'
  elseif redis.call('ZADD', KEYS[2], 'NX', 0, user) == 1 then
    new = 1
    count, ver = count + 1, ver + 1
    if name ~= '' then redis.call('HSET', KEYS[3], user, name) end
    if count == 1 then -- the first entrant: the lists live as long as the lottery
      local ttl = redis.call('PTTL', KEYS[1])
      if ttl > 0 then
        redis.call('PEXPIRE', KEYS[2], ttl)
        redis.call('PEXPIRE', KEYS[3], ttl)
      end
    end
  end
  out[#out + 1] = code; out[#out + 1] = new
end
if count ~= count0 then
  redis.call('HSET', KEYS[1], 'count', count, 'ver', ver)
  redis.call('HSET', KEYS[4], 'lcount:' .. ARGV[2], cmsgpack.pack({count, ver}))
end
out[1], out[2] = count, ver
return out
