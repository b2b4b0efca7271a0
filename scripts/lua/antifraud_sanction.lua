-- antifraud_sanction: impose or lift a ban, a mute or a grab refusal on a user, in one room or
-- globally, and report it to the host in the same step (room scope).
-- KEYS[1] sanctions hash ("<kind>:<user>" -> JSON record {until, reason, by, at, shadow?})
-- KEYS[2] sanction expiry sorted set ("<kind>:<user>" -> until, ms; only sanctions that expire)
-- KEYS[3] room banned set: the users whose flash-sale grabs the grab script refuses (room scope
--         only; a global ban has no KEYS[3] and is enforced by every node before the grab)
-- KEYS[4] room event stream (room scope only)
-- ARGV[1] kind: ban | mute | nograb     ARGV[2] user id
-- ARGV[3] the record (JSON), or '' to lift the sanction
-- ARGV[4] until (ms since the epoch; 0 = until lifted)
-- ARGV[5] event stream cap   ARGV[6] event id   ARGV[7] event time (ms)
-- ARGV[8] event type         ARGV[9] event data (JSON)
-- Returns 1 when something changed (imposed, replaced or lifted), 0 when lifting what is not there.
-- Invariant: a user is in the room banned set exactly while it has a room ban; the hash and the
-- expiry set agree; every change has its event (room scope), none without one.
local field = ARGV[1] .. ':' .. ARGV[2]
local changed = 0
if ARGV[3] == '' then
  changed = redis.call('HDEL', KEYS[1], field)
  redis.call('ZREM', KEYS[2], field)
  if KEYS[3] and ARGV[1] == 'ban' then redis.call('SREM', KEYS[3], ARGV[2]) end
else
  redis.call('HSET', KEYS[1], field, ARGV[3])
  if tonumber(ARGV[4]) > 0 then
    redis.call('ZADD', KEYS[2], ARGV[4], field)
  else
    redis.call('ZREM', KEYS[2], field)
  end
  if KEYS[3] and ARGV[1] == 'ban' then redis.call('SADD', KEYS[3], ARGV[2]) end
  changed = 1
end
if changed == 1 and KEYS[4] then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*',
    'id', ARGV[6], 'type', ARGV[8], 'ts', ARGV[7], 'data', ARGV[9])
end
return changed
