-- lottery_expire: expire the prizes whose claim window has passed unclaimed.
-- KEYS[1] lottery info hash      ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] lottery winners hash   ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] room event stream      ARGV[3] event id prefix (24 hex; + 8 hex per event)
--                                ARGV[4] lottery id
-- Returns {expired now, next deadline of a prize still unclaimed (ms), or 0 when none}.
-- Invariant: one `lottery.expired` per expired prize, written when it expires (here or by a late
-- lottery_claim), and only at or after its deadline.
--!include lib/promo.lua
local prize = redis.call('HGET', KEYS[1], 'prize')
if not prize then return {0, 0} end
local now = pr_now(ARGV[1])
local flat = redis.call('HGETALL', KEYS[2])
local expired, next_due = 0, 0
for i = 1, #flat, 2 do
  local user = flat[i]
  local rank, state, until_ = string.match(flat[i + 1], '^(%d+)\t(%a+)\t(%d+)\t')
  until_ = tonumber(until_)
  if state == 'won' then
    if now >= until_ then
      expired = expired + 1
      redis.call('HSET', KEYS[2], user, rank .. '\texpired\t' .. pr_ms(until_) .. '\t')
      pr_event(KEYS[3], ARGV[2], ARGV[3] .. string.format('%08x', expired), now,
        'lottery.expired', {lottery = ARGV[4], prize = prize, user = user,
        rank = tonumber(rank), claim_until = until_})
    elseif next_due == 0 or until_ < next_due then
      next_due = until_
    end
  end
end
return {expired, next_due}
