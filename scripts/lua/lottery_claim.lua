-- lottery_claim: the host reports that a winner claimed the prize (within the claim window).
-- KEYS[1] lottery info hash      ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] lottery winners hash   ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] room event stream      ARGV[3] event id   ARGV[4] lottery id   ARGV[5] user
--                                ARGV[6] the host's reference (order, address id; may be '')
-- Returns {code, already, rank, claim_until}: code ok | unknown_lottery | not_a_winner (not
--   drawn yet, or not among the winners) | claim_expired (the window has passed: a winner still
--   `won` is expired here, with its `lottery.expired` event).
-- Invariant: a prize is claimed at most once (`lottery.claimed` once; repeats answer
-- already = 1) and never after its claim deadline; won -> claimed | expired, never back.
--!include lib/promo.lua
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'unknown_lottery', 0, 0, 0} end
local rec = redis.call('HGET', KEYS[2], ARGV[5])
if state ~= 'drawn' or not rec then return {'not_a_winner', 0, 0, 0} end
local rank, wstate, until_ = string.match(rec, '^(%d+)\t(%a+)\t(%d+)\t')
rank, until_ = tonumber(rank), tonumber(until_)
if wstate == 'claimed' then return {'ok', 1, rank, until_} end
if wstate == 'expired' then return {'claim_expired', 0, rank, until_} end
local now = pr_now(ARGV[1])
local prize = redis.call('HGET', KEYS[1], 'prize')
if now >= until_ then
  redis.call('HSET', KEYS[2], ARGV[5], rank .. '\texpired\t' .. pr_ms(until_) .. '\t')
  pr_event(KEYS[3], ARGV[2], ARGV[3], now, 'lottery.expired', {lottery = ARGV[4], prize = prize,
    user = ARGV[5], rank = rank, claim_until = until_})
  return {'claim_expired', 0, rank, until_}
end
redis.call('HSET', KEYS[2], ARGV[5], rank .. '\tclaimed\t' .. pr_ms(until_) .. '\t' .. ARGV[6])
pr_event(KEYS[3], ARGV[2], ARGV[3], now, 'lottery.claimed', {lottery = ARGV[4], prize = prize,
  user = ARGV[5], rank = rank, ref = ARGV[6] ~= '' and ARGV[6] or nil, claimed_at = now})
return {'ok', 0, rank, until_}
