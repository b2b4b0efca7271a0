-- lottery_freeze: close a lottery's entries for the draw (the first step of a draw).
-- KEYS[1] lottery info hash       ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] lottery entrants zset   ARGV[2] lottery id
-- KEYS[3] room lotteries hash
-- Returns {code, entrants, state}: code ok (state frozen, or drawn when it was drawn before) |
--   unknown_lottery | bad_state (cancelled).
-- Invariant: from the freeze on, the entrant set never changes (lottery_enter admits only open
-- lotteries), so the list the draw hashes is the list it draws from.
--!include lib/promo.lua
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'unknown_lottery', 0, ''} end
local count = redis.call('ZCARD', KEYS[2])
if state == 'cancelled' then return {'bad_state', count, state} end
if state == 'open' then
  local now = pr_now(ARGV[1])
  redis.call('HSET', KEYS[1], 'state', 'frozen', 'frozen_at', pr_ms(now), 'count', count)
  local summary = redis.call('HGET', KEYS[3], ARGV[2])
  if summary then
    local s = cjson.decode(summary)
    s.state = 'frozen'
    redis.call('HSET', KEYS[3], ARGV[2], cjson.encode(s))
  end
  state = 'frozen'
end
return {'ok', count, state}
