-- lottery_draw: pick the winners of a frozen lottery, record them and tell the host.
-- KEYS[1] lottery info hash      ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] lottery entrants zset  ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] lottery winners hash   ARGV[3] event id prefix (24 hex; + 8 hex per event)
-- KEYS[4] lottery names hash     ARGV[4] lottery id
-- KEYS[5] room event stream      ARGV[5] draw key K = SHA-256("live-lottery-v1\n" + seed + "\n"
-- KEYS[6] room state hash                + digest), hex (Lua has no SHA-256: the node hashes)
-- KEYS[7] room lotteries hash    ARGV[6] digest of the frozen, sorted entrant list (hex)
--                                ARGV[7] entrants the node hashed (M)
--                                ARGV[8] how long to keep the keys after the claim window (ms)
-- Returns {code, already, drawn_at, claim_until, winner...}: code ok | unknown_lottery |
--   bad_state (not frozen) | changed (the set does not have M entrants: nothing is drawn).
-- The pick (docs/lottery.md, engine/features/lottery_draw.py): a partial Fisher-Yates shuffle
-- of the positions 0..M-1 of the entrant set in byte order; step i swaps position i with
-- i + u, u uniform in [0, M - i) from the first 48 bits of SHA-1(K .. ':' .. i .. ':' .. c),
-- c = 0, 1, ... rejecting values >= floor(2^48 / (M - i)) * (M - i).
-- Writes `lottery.drawn` (with the seed, the digest and the winners) and one `lottery.won` per
-- winner with its claim deadline; a lottery drawn before returns its winners again.
-- Invariant: min(N, M) winners, distinct, all entrants, in rank order; a lottery is drawn at
-- most once; one lottery.won event per winner.
--!include lib/promo.lua
local l = redis.call('HMGET', KEYS[1], 'state', 'wanted', 'claim_ms', 'seed', 'commitment',
  'prize', 'drawn_at', 'claim_until', 'winner_list')
if not l[1] then return {'unknown_lottery', 0, 0, 0} end
if l[1] == 'drawn' then
  local out = {'ok', 1, tonumber(l[7]), tonumber(l[8])}
  for user in string.gmatch(l[9] or '', '[^\n]+') do out[#out + 1] = user end
  return out
end
if l[1] ~= 'frozen' then return {'bad_state', 0, 0, 0} end
local m = tonumber(ARGV[7])
if redis.call('ZCARD', KEYS[2]) ~= m then return {'changed', 0, 0, 0} end
local now, id, key = pr_now(ARGV[1]), ARGV[4], ARGV[5]
local wanted = tonumber(l[2])
local k = math.min(wanted, m)
local space = 281474976710656 -- 2^48
local function uniform(step, n)
  local limit = math.floor(space / n) * n
  local c = 0
  while true do
    local h = redis.sha1hex(key .. ':' .. string.format('%d', step) .. ':' ..
      string.format('%d', c))
    local x = tonumber(string.sub(h, 1, 12), 16)
    if x < limit then return math.fmod(x, n) end
    c = c + 1
  end
end
local swapped, winners, seen = {}, {}, {}
for i = 0, k - 1 do
  local j = i + uniform(i, m - i)
  local at_i, at_j = swapped[i] or i, swapped[j] or j
  swapped[i], swapped[j] = at_j, at_i
  local user = redis.call('ZRANGE', KEYS[2], at_j, at_j)[1]
  if seen[user] then return redis.error_reply('lottery_draw: a winner was drawn twice') end
  seen[user] = true
  winners[#winners + 1] = user
end
local claim_until = now + tonumber(l[3])
local keep_until = claim_until + tonumber(ARGV[8])
local shown, events = {}, 1
local prefix = ARGV[3]
for rank, user in ipairs(winners) do
  redis.call('HSET', KEYS[3], user, rank .. '\twon\t' .. pr_ms(claim_until) .. '\t')
  local name = redis.call('HGET', KEYS[4], user)
  shown[rank] = {user = user, rank = rank, name = name or nil}
end
redis.call('HSET', KEYS[1], 'state', 'drawn', 'drawn_at', pr_ms(now), 'claim_until',
  pr_ms(claim_until), 'digest', ARGV[6], 'key', key, 'count', m,
  'winner_list', table.concat(winners, '\n'))
local summary = redis.call('HGET', KEYS[7], id)
if summary then
  local s = cjson.decode(summary)
  s.state = 'drawn'
  redis.call('HSET', KEYS[7], id, cjson.encode(s))
end
redis.call('HDEL', KEYS[6], 'lottery:' .. id, 'lcount:' .. id)
for i = 1, 4 do redis.call('PEXPIREAT', KEYS[i], pr_ms(keep_until)) end
local data = cjson.encode({lottery = id, prize = l[6], wanted = wanted, entrants = m,
  winners = #shown > 0 and shown or '[]', seed = l[4], commitment = l[5], digest = ARGV[6],
  key = key, algorithm = 'live-lottery-v1', claim_until = claim_until})
data = string.gsub(data, '"winners":"%[%]"', '"winners":[]')
pr_event(KEYS[5], ARGV[2], prefix .. string.format('%08x', events), now, 'lottery.drawn', data)
for rank, user in ipairs(winners) do
  events = events + 1
  pr_event(KEYS[5], ARGV[2], prefix .. string.format('%08x', events), now, 'lottery.won',
    {lottery = id, prize = l[6], user = user, rank = rank, claim_until = claim_until})
end
local out = {'ok', 0, now, claim_until}
for _, user in ipairs(winners) do out[#out + 1] = user end
return out
