-- follow: a viewer follows the room's anchor (idempotent per room and user).
-- KEYS[1] room followers hash (user -> ms)  ARGV[1] now (ms since epoch)
-- KEYS[2] room live numbers hash            ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] room event stream                 ARGV[3] event id (unique, the host's idempotency key)
-- KEYS[4] room info hash (for the anchor)   ARGV[4] user
-- Returns {new (1 | 0), new follows this session}.
-- Invariant: one `follow` event per room and user, ever; the session count (field `follows` of
-- the live numbers, reset by start_room) grows by one per new follow.
if redis.call('HSETNX', KEYS[1], ARGV[4], ARGV[1]) == 0 then
  return {0, tonumber(redis.call('HGET', KEYS[2], 'follows') or '0')}
end
local n = redis.call('HINCRBY', KEYS[2], 'follows', 1)
local anchor = redis.call('HGET', KEYS[4], 'anchor')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'id', ARGV[3], 'type', 'follow',
  'ts', ARGV[1], 'data', cjson.encode({user = ARGV[4], anchor = anchor or nil}))
return {1, n}
