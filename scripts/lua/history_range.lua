-- history_range: a room's messages (after, upto] with the epoch they belong to, in one read.
-- KEYS[1] room meta hash (epoch, seq)    ARGV[1] after (exclusive)   ARGV[2] upto (inclusive)
-- KEYS[2] room history stream            ARGV[3] most entries to return
-- Returns {epoch or false, last seq, {id1, payload1, id2, payload2, ...}}.
-- Invariant: read-only; the entries and the epoch are read in one atomic step, so a caller never
-- mixes the history of a new epoch with positions of an old one.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local flat = {}
local entries = redis.call('XRANGE', KEYS[2], (tonumber(ARGV[1]) + 1) .. '-0', ARGV[2] .. '-0',
  'COUNT', ARGV[3])
for _, entry in ipairs(entries) do
  flat[#flat + 1] = entry[1]
  flat[#flat + 1] = entry[2][2]
end
return {epoch or false, seq, flat}
