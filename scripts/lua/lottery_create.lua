-- lottery_create: create a lottery, committed to its secret seed.
-- KEYS[1] lottery info hash     ARGV[1] now in ms, or '' to use the Redis clock
-- KEYS[2] room lotteries hash   ARGV[2] event stream cap (approximate MAXLEN)
-- KEYS[3] room event stream     ARGV[3] event id   ARGV[4] lottery id   ARGV[5] prize
-- KEYS[4] room state hash       ARGV[6] winners wanted (N)   ARGV[7] entry: keyword|follow|both
--                               ARGV[8] keyword (as shown)   ARGV[9] keyword (normalized)
--                               ARGV[10] draw at (ms, 0: drawn by hand)  ARGV[11] claim window
--                               (ms)  ARGV[12] seed (64 hex, secret until the draw)
--                               ARGV[13] commitment = SHA-256(seed)      ARGV[14] keys live (ms)
-- Returns {code, created_at}: code ok | lottery_exists (nothing changes).
-- Writes `lottery.created` with the commitment (never the seed); the room state gets the
-- lottery's view (lottery:<id>) and its live entrant count (lcount:<id>) for snapshots.
-- Invariant: the seed is fixed before the first entry and is not revealed until the draw; a
-- lottery id is never reused while its keys exist.
--!include lib/promo.lua
if redis.call('EXISTS', KEYS[1]) == 1 then return {'lottery_exists', 0} end
local now, id = pr_now(ARGV[1]), ARGV[4]
local wanted, draw_at = tonumber(ARGV[6]), tonumber(ARGV[10])
redis.call('HSET', KEYS[1], 'prize', ARGV[5], 'wanted', wanted, 'entry', ARGV[7],
  'keyword', ARGV[8], 'draw_at', draw_at, 'claim_ms', ARGV[11], 'seed', ARGV[12],
  'commitment', ARGV[13], 'state', 'open', 'count', 0, 'ver', 1, 'created_at', pr_ms(now))
redis.call('PEXPIRE', KEYS[1], ARGV[14])
redis.call('HSET', KEYS[2], id, cjson.encode({entry = ARGV[7], keyword = ARGV[9],
  draw_at = draw_at, state = 'open'}))
local view = {lottery = id, prize = ARGV[5], winners = wanted, entry = ARGV[7],
  keyword = ARGV[8] ~= '' and ARGV[8] or nil, draw_at = draw_at > 0 and draw_at or nil,
  commitment = ARGV[13], created_at = now}
redis.call('HSET', KEYS[4], 'lottery:' .. id, cmsgpack.pack(view),
  'lcount:' .. id, cmsgpack.pack({0, 1}))
pr_event(KEYS[3], ARGV[2], ARGV[3], now, 'lottery.created', {lottery = id, prize = ARGV[5],
  winners = wanted, entry = ARGV[7], keyword = ARGV[8] ~= '' and ARGV[8] or nil,
  draw_at = draw_at > 0 and draw_at or nil, claim_s = tonumber(ARGV[11]) / 1000,
  commitment = ARGV[13]})
return {'ok', now}
