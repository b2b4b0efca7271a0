-- lottery_cancel: call off a lottery that has not been drawn.
-- KEYS[1] lottery info hash     ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] room event stream     ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] room state hash       ARGV[3] event id   ARGV[4] lottery id   ARGV[5] reason
-- KEYS[4] room lotteries hash
-- Returns {code, already}: code ok | unknown_lottery | bad_state (drawn already).
-- Invariant: a cancelled lottery takes no entry and is never drawn; one `lottery.cancelled`.
--!include lib/promo.lua
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'unknown_lottery', 0} end
if state == 'cancelled' then return {'ok', 1} end
if state == 'drawn' then return {'bad_state', 0} end
local now = pr_now(ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'cancelled_at', pr_ms(now))
redis.call('HDEL', KEYS[3], 'lottery:' .. ARGV[4], 'lcount:' .. ARGV[4])
local summary = redis.call('HGET', KEYS[4], ARGV[4])
if summary then
  local s = cjson.decode(summary)
  s.state = 'cancelled'
  redis.call('HSET', KEYS[4], ARGV[4], cjson.encode(s))
end
pr_event(KEYS[2], ARGV[2], ARGV[3], now, 'lottery.cancelled', {lottery = ARGV[4],
  reason = ARGV[5] ~= '' and ARGV[5] or nil})
return {'ok', 0}
