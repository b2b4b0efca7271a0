-- room_meta: a room's epoch and last seq, giving the room an epoch if it has none yet.
-- KEYS[1] room meta hash (epoch, seq)    ARGV[1] epoch to use if the room has none
-- KEYS[2] room history stream
-- Returns {epoch, seq}.
-- Invariant: once this returns, every later publication of the room carries this epoch until the
-- meta hash is lost; a new epoch always starts with an empty history.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  redis.call('DEL', KEYS[2])
end
return {epoch, tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')}
