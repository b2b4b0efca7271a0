-- product_card: mount, unmount, pin or unpin a product card in the room (the anchor's action).
-- KEYS[1] room products hash        ARGV[1] action: mount | unmount | pin | unpin
-- KEYS[2] room state hash (cards)   ARGV[2] product id ('' for unpin)
-- Returns {code, cards, card}: code ok | unknown_product; cards = the new `cards` state
-- (msgpack {mounted = [card...] in display order, pinned = id or ''}); card = the product's card
-- (msgpack) or ''.
-- Invariant: mounted cards are products of the room, each at most once, ordered by (order, id);
-- the pinned product is mounted (pinning mounts it; unmounting unpins it).
local action, id = ARGV[1], ARGV[2]
local raw = redis.call('HGET', KEYS[2], 'cards')
local cards = raw and cmsgpack.unpack(raw) or {mounted = {}, pinned = ''}
local mounted, pinned = cards.mounted or {}, cards.pinned or ''
local card = ''
local function without(list, pid)
  local out = {}
  for _, c in ipairs(list) do if c.id ~= pid then out[#out + 1] = c end end
  return out
end
if action == 'mount' or action == 'pin' then
  local raw_p = redis.call('HGET', KEYS[1], id)
  if not raw_p then return {'unknown_product', raw or '', ''} end
  local p = cmsgpack.unpack(raw_p)
  local c = {id = p.id, name = p.name, price = p.price, image = p.image, stock = p.stock,
    order = p.order}
  mounted = without(mounted, id)
  mounted[#mounted + 1] = c
  table.sort(mounted, function(a, b)
    if a.order ~= b.order then return a.order < b.order end
    return a.id < b.id
  end)
  if action == 'pin' then pinned = id end
  card = cmsgpack.pack(c)
elseif action == 'unmount' then
  mounted = without(mounted, id)
  if pinned == id then pinned = '' end
elseif action == 'unpin' then
  pinned = ''
end
local packed = cmsgpack.pack({mounted = mounted, pinned = pinned})
redis.call('HSET', KEYS[2], 'cards', packed)
return {'ok', packed, card}
