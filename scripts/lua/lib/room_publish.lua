-- lib/room_publish.lua: included (--!include) by every script that publishes a room message.
-- room_publish(meta_key, history_key, channel, payload, maxlen, ttl_ms, epoch_candidate)
--   meta_key     room meta hash: epoch, seq
--   history_key  room history stream, entry id <seq>-0, field p = payload
-- Gives the message the room's next seq, stores it in the capped history (which expires after
-- ttl_ms without publications) and publishes "<epoch>:<seq>:<payload>" on the room channel, all in
-- the calling script's atomic step. Returns {epoch, seq}.
-- Invariant: seqs of an epoch are 1, 2, 3, ... with no gap and no repeat, in publish order; a new
-- epoch (the meta hash was lost, e.g. Redis restarted without persistence) starts an empty history.
local function room_publish(meta_key, history_key, channel, payload, maxlen, ttl_ms, candidate)
  local epoch = redis.call('HGET', meta_key, 'epoch')
  if not epoch then
    epoch = candidate
    redis.call('HSET', meta_key, 'epoch', epoch)
    redis.call('DEL', history_key)
  end
  local seq = redis.call('HINCRBY', meta_key, 'seq', 1)
  redis.call('XADD', history_key, 'MAXLEN', '~', maxlen, seq .. '-0', 'p', payload)
  redis.call('PEXPIRE', history_key, ttl_ms)
  redis.call('PUBLISH', channel, epoch .. ':' .. seq .. ':' .. payload)
  return {epoch, seq}
end
