-- lottery_enter: enter a user into an open lottery (once per user).
-- KEYS[1] lottery info hash         ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] lottery entrants zset     ARGV[2] user
-- KEYS[3] lottery names hash        ARGV[3] how: keyword (a danmaku), follow, button (an
-- KEYS[4] room state hash                   explicit `lottery_enter`)
-- KEYS[5] room followers hash       ARGV[4] display name ('' for none)
-- KEYS[6] room banned set           ARGV[5] lottery id
-- Returns {code, new, count, ver}: code ok (new = 1 when the user was not entered before) |
--   unknown_lottery | lottery_closed (not open, or its draw time has come) | follow_required (a
--   follow-only lottery and the user has not followed) | banned.
-- Invariant: an entrant is in the set at most once (every score 0: the set reads in byte
-- order); nothing enters once the lottery is frozen, drawn or cancelled, or at or after its
-- draw time; count = the size of the entrant set.
--!include lib/promo.lua
local l = redis.call('HMGET', KEYS[1], 'state', 'entry', 'draw_at', 'count', 'ver')
if not l[1] then return {'unknown_lottery', 0, 0, 0} end
local count, ver = tonumber(l[4]), tonumber(l[5])
local now, user, how = pr_now(ARGV[1]), ARGV[2], ARGV[3]
local draw_at = tonumber(l[3])
if l[1] ~= 'open' or (draw_at > 0 and now >= draw_at) then
  return {'lottery_closed', 0, count, ver}
end
if redis.call('SISMEMBER', KEYS[6], user) == 1 then return {'banned', 0, count, ver} end
local entry = l[2]
if entry == 'keyword' and how == 'follow' then return {'lottery_closed', 0, count, ver} end
if entry == 'follow' and how ~= 'follow' and redis.call('HEXISTS', KEYS[5], user) == 0 then
  return {'follow_required', 0, count, ver}
end
if redis.call('ZADD', KEYS[2], 'NX', 0, user) == 0 then return {'ok', 0, count, ver} end
count, ver = count + 1, ver + 1
redis.call('HSET', KEYS[1], 'count', count, 'ver', ver)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], user, ARGV[4]) end
if count == 1 then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[2], ttl)
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
end
redis.call('HSET', KEYS[4], 'lcount:' .. ARGV[5], cmsgpack.pack({count, ver}))
return {'ok', 1, count, ver}
