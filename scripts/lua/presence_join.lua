-- presence_join: count a viewer connection in on this node and tell the host.
-- KEYS[1] room online hash (node -> count)   ARGV[1] node id
-- KEYS[2] room event stream                  ARGV[2] event stream cap (approximate MAXLEN)
--                                            ARGV[3] event id (unique, the host's idempotency key)
--                                            ARGV[4] event time (ms since epoch)
--                                            ARGV[5] event payload (JSON)
-- Returns the room's online count over all nodes.
-- Invariant: the count and the viewer.entered event change together or not at all.
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
  'id', ARGV[3], 'type', 'viewer.entered', 'ts', ARGV[4], 'data', ARGV[5])
local total = 0
for _, n in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(n) end
return total
