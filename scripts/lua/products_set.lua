-- products_set: replace a room's product list, and refresh (or take down) its mounted cards.
-- KEYS[1] room products hash (product id -> msgpack)   ARGV[1..] pairs: product id, product
-- KEYS[2] room state hash (field `cards`)                        (msgpack map with the card
--                                                                fields id, name, price, image,
--                                                                stock, order)
-- Returns the new `cards` state (msgpack {mounted = [card...], pinned = id or ''}).
-- Invariant: every mounted card is a product of the list, showing that product's current card
-- fields; the pinned product is mounted.
local function card_of(p)
  return {id = p.id, name = p.name, price = p.price, image = p.image, stock = p.stock,
    order = p.order}
end
redis.call('DEL', KEYS[1])
local byid = {}
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  byid[ARGV[i]] = cmsgpack.unpack(ARGV[i + 1])
end
local raw = redis.call('HGET', KEYS[2], 'cards')
local cards = raw and cmsgpack.unpack(raw) or {mounted = {}, pinned = ''}
local mounted = {}
for _, card in ipairs(cards.mounted or {}) do
  local p = byid[card.id]
  if p then mounted[#mounted + 1] = card_of(p) end
end
local pinned = cards.pinned or ''
if pinned ~= '' and not byid[pinned] then pinned = '' end
local packed = cmsgpack.pack({mounted = mounted, pinned = pinned})
redis.call('HSET', KEYS[2], 'cards', packed)
return packed
