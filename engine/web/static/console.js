// The demo anchor console: the control WebSocket (live-control.js) for commands and live
// numbers, and a viewer connection with the anchor's token (live-client.js) for the chat feed.
// Open /demo/console.html?room=demo (dev mode mints an anchor token), or
// /demo/console.html#token=<anchor JWT>&ws=<viewer URL>&control=<control URL>.
import { LiveClient } from './live-client.js';
import { ControlClient } from './live-control.js';
import { count, demoSession, el, money, pageParams, userColor } from './demo.js';

const $ = (id) => document.getElementById(id);
const params = pageParams();
const state = {
  control: null,
  chat: null,
  session: null,
  commands: new Set(), // the commands this engine has (from its OpenAPI document)
  products: [],
  cards: { mounted: [], pinned: null },
  numbers: null,
  replyTo: null,
  log: [], // {method, ok, code}
};
window.demo = state;

const DEMO_PRODUCTS = [
  { id: 'tea', name: 'West Lake Longjing tea, 250 g', price: 12800, list_price: 16800, stock: 500, image: 'img/tea.svg', promo: 'spring harvest' },
  { id: 'teapot', name: 'Yixing clay teapot', price: 29900, list_price: 39900, stock: 80, image: 'img/teapot.svg' },
  { id: 'cups', name: 'Celadon cups, set of 4', price: 8900, stock: 200, image: 'img/cups.svg' },
  { id: 'honey', name: 'Mountain flower honey, 500 g', price: 6800, list_price: 7800, stock: 300, image: 'img/honey.svg' },
];
const DEMO_PHRASES = ['Hello everyone! 👋', 'How much is it? 💰', 'Add to cart 🛒', 'Love it ❤️', '666 🔥'];

main().catch((err) => logLine('page', false, String(err.message || err)));

async function main() {
  const session = await demoSession(params, 'anchor', { user: 'anchor', name: 'Anchor Mia' });
  state.session = session;
  $('room-name').textContent = `room ${session.room}`;
  const viewer = new URL('viewer.html', location.href);
  viewer.searchParams.set('room', session.room);
  $('viewer-link').href = viewer.href;
  state.commands = await availableCommands();

  const control = new ControlClient({ url: session.controlUrl, token: session.token, room: session.room });
  state.control = control;
  control.on('state', ({ state: s }) => setConn('control-conn', 'control', s));
  control.on('numbers', renderNumbers);
  control.on('state', ({ state: s }) => { if (s === 'open') refresh(); });

  const chat = new LiveClient({ url: session.wsUrl, token: session.token, room: session.room });
  state.chat = chat;
  chat.on('state', ({ state: s }) => setConn('chat-conn', 'chat', s));
  chat.on('chat', (msgs) => msgs.forEach(addChat));
  chat.on('snapshot', () => {
    state.cards = chat.room.cards;
    renderProducts();
    $('phrases').value = chat.room.phrases.map((p) => p.text).join('\n');
    if (chat.room.pinned) $('pin-text').placeholder = `pinned: ${chat.room.pinned.text}`;
  });
  chat.on('cards', (cards) => { state.cards = cards; renderProducts(); });
  chat.on('phrases', (phrases) => { $('phrases').value = phrases.map((p) => p.text).join('\n'); });

  setupControls();
  renderFeaturePanels();
  control.connect();
  chat.connect();
}

async function availableCommands() {
  try {
    const doc = await (await fetch('/api/openapi.json')).json();
    const names = new Set();
    for (const ops of Object.values(doc.paths || {})) {
      for (const op of Object.values(ops)) if (op.operationId) names.add(op.operationId);
    }
    return names;
  } catch {
    return new Set();
  }
}

function setConn(id, label, s) {
  const node = $(id);
  node.dataset.state = s;
  node.textContent = `${label}: ${s === 'open' ? '● connected' : s}`;
}

/** Call a command, log it, and return its result (or null when refused). */
async function run(method, params = {}) {
  try {
    const result = await state.control.call(method, params);
    logLine(method, true, summary(result));
    return result;
  } catch (err) {
    logLine(method, false, `${err.code}: ${err.message.replace(/^[a-z_]+: /, '')}`);
    return null;
  }
}

function summary(result) {
  const text = JSON.stringify(result) ?? '';
  return text.length > 90 ? `${text.slice(0, 90)}…` : text;
}

function logLine(method, ok, text) {
  state.log.push({ method, ok, text });
  const log = $('log');
  const time = new Date().toLocaleTimeString();
  log.prepend(el('div', { class: ok ? 'ok' : 'err', dataset: { method } }, `${time} ${ok ? '✓' : '✗'} ${method} ${text}`));
  while (log.childElementCount > 100) log.lastElementChild.remove();
}

// --------------------------------------------------------------------------------------------
// numbers, products, sales

function renderNumbers(n) {
  state.numbers = n;
  $('n-online').textContent = count(n.online);
  $('n-peak').textContent = count(n.peak);
  $('n-likes').textContent = count(n.likes);
  $('n-likes').dataset.value = String(n.likes);
  $('n-rate').textContent = n.danmaku_per_s.toFixed(1);
  $('n-total').textContent = count(n.danmaku_total);
  renderSales(n.sales || []);
}

async function refresh() {
  const products = await run('get_products');
  if (!products) return;
  state.products = products.products;
  if (!state.products.length && state.session.dev) await loadDemo();
  renderProducts();
}

async function loadDemo() {
  const products = DEMO_PRODUCTS.map((p) => ({ ...p, image: new URL(p.image, location.href).href }));
  const result = await run('set_products', { products });
  if (!result) return;
  state.products = result.products;
  await run('set_phrases', { phrases: DEMO_PHRASES });
  await run('pin_product', { product: DEMO_PRODUCTS[0].id });
  renderProducts();
}

function renderProducts() {
  const box = $('products');
  const { mounted, pinned } = state.cards;
  const isMounted = new Set(mounted.map((c) => c.id));
  if (!state.products.length) {
    box.replaceChildren(el('div', { class: 'note' }, 'No products yet: "Load demo products".'));
  } else {
    box.replaceChildren(...state.products.map((p) => el('div', {
      class: `product${isMounted.has(p.id) ? ' mounted' : ''}${pinned === p.id ? ' pinned' : ''}`,
      dataset: { product: p.id },
    },
    el('img', { src: p.image, alt: '' }),
    el('div', { class: 'info' }, el('b', {}, p.name), `${money(p.price)} · ${p.stock} in stock`),
    isMounted.has(p.id)
      ? el('button', { class: 'btn small', type: 'button', onclick: () => run('unmount_product', { product: p.id }) }, 'Take down')
      : el('button', { class: 'btn small', type: 'button', onclick: () => run('mount_product', { product: p.id }) }, 'Show'),
    pinned === p.id
      ? el('button', { class: 'btn small', type: 'button', onclick: () => run('unpin_product') }, 'Unpin')
      : el('button', { class: 'btn small', type: 'button', onclick: () => run('pin_product', { product: p.id }) }, 'Pin'))));
  }
  const select = $('sale-product');
  const chosen = select.value;
  select.replaceChildren(...state.products.map((p) => el('option', { value: p.id }, p.name)));
  if (chosen) select.value = chosen;
}

function renderSales(sales) {
  const box = $('sales');
  box.replaceChildren(...sales.map((s) => el('div', { class: 'sale-row', dataset: { sale: s.sale } },
    el('div', { class: 'info' },
      el('b', {}, `${s.product} `), el('span', { class: 'muted' }, s.status),
      el('div', {}, `${s.left} / ${s.stock} left · ${s.held} held · ${s.sold} sold · ${s.grabs} grabs`),
      el('div', { class: 'bar' }, el('div', { style: `width:${s.stock ? (100 * s.left) / s.stock : 0}%` }))),
    el('button', { class: 'btn small', type: 'button', onclick: () => run('restock', { sale: s.sale, count: 10 }) }, '+10'),
    el('button', { class: 'btn small', type: 'button', onclick: () => run('end_seckill', { sale: s.sale }) }, 'End'))));
}

async function startSale() {
  const product = $('sale-product').value;
  if (!product) return logLine('start_seckill', false, 'pick a product first');
  const delay = Number($('sale-delay').value) || 0;
  const settings = {
    product,
    price: Math.round(Number($('sale-price').value) * 100),
    stock: Number($('sale-stock').value),
    limit: Number($('sale-limit').value) || 1,
    duration_s: Number($('sale-duration').value) || 60,
  };
  if (delay > 0) {
    // the sale's clock is Redis's: start from the server time the chat connection estimates
    settings.start_at = Math.round(state.chat.serverNow() + delay * 1000);
    settings.duration_s += delay;
  }
  const sale = await run('start_seckill', settings);
  if (sale && state.chat) {
    const line = `⚡ Flash sale: ${sale.name} at ${money(sale.price)}, ${sale.stock} units!`;
    run('pin', { text: line });
  }
}

// --------------------------------------------------------------------------------------------
// chat, pin, notices, moderation

function addChat(m) {
  const chat = $('chat');
  const atBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 40;
  chat.append(el('div', { class: `msg${m.role ? ' staff' : ''}`, dataset: { id: m.id, user: m.user } },
    el('span', { class: 'name', style: `color:${userColor(m.user)}` }, m.name),
    el('span', { class: 'text' }, m.reply_to ? `@${m.reply_to.user} ${m.text}` : m.text),
    el('span', { class: 'actions' },
      el('button', { class: 'btn small', type: 'button', onclick: () => setReply(m.user, m.name) }, 'Reply'),
      el('button', { class: 'btn small', type: 'button', onclick: () => run('pin', { text: `${m.name}: ${m.text}`.slice(0, 200) }) }, 'Pin'),
      m.role ? null : el('button', { class: 'btn small', type: 'button', onclick: () => mute(m.user, 10) }, 'Mute'))));
  while (chat.childElementCount > 300) chat.firstElementChild.remove();
  if (atBottom) chat.scrollTop = chat.scrollHeight;
}

function setReply(user, name) {
  state.replyTo = user;
  $('reply-target').replaceChildren(
    `Replying to @${name} `,
    el('button', { class: 'btn small', type: 'button', onclick: () => setReply(null) }, '×'));
  if (!user) $('reply-target').textContent = '';
  $('reply-text').focus();
}

async function mute(user, minutes) {
  const params = { user, reason: 'muted by the anchor' };
  if (minutes) params.duration_s = minutes * 60;
  const result = await run('mute', params);
  if (result) $('sanctions').prepend(el('div', {}, `🔇 ${user} muted${minutes ? ` for ${minutes} min` : ''}`));
}

function setupControls() {
  $('load-demo').addEventListener('click', loadDemo);
  $('sale-start').addEventListener('click', startSale);
  $('pin').addEventListener('click', () => {
    const text = $('pin-text').value.trim();
    if (text) run('pin', { text }).then((r) => { if (r) $('pin-text').value = ''; });
  });
  $('unpin').addEventListener('click', () => run('unpin'));
  $('stream-interrupted').addEventListener('click', () => run('stream_notice', { state: 'interrupted', text: 'Be right back: the stream is reconnecting' }));
  $('stream-resumed').addEventListener('click', () => run('stream_notice', { state: 'resumed' }));
  $('phrases-save').addEventListener('click', () => {
    const phrases = $('phrases').value.split('\n').map((s) => s.trim()).filter(Boolean);
    run('set_phrases', { phrases });
  });
  $('reply-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = $('reply-text').value.trim();
    if (!text) return;
    const params = { text };
    if (state.replyTo) params.reply_to = state.replyTo;
    if (await run('reply', params)) {
      $('reply-text').value = '';
      setReply(null);
    }
  });
  $('mute').addEventListener('click', () => {
    const user = $('mute-user').value.trim();
    if (user) mute(user, Number($('mute-minutes').value) || 0);
  });
  $('unmute').addEventListener('click', async () => {
    const user = $('mute-user').value.trim();
    if (user && (await run('unmute', { user }))) $('sanctions').prepend(el('div', {}, `🔈 ${user} unmuted`));
  });
}

// --------------------------------------------------------------------------------------------
// coupons and lotteries: shown when this engine has their commands

const newId = (prefix) => `${prefix}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 5)}`;
const field = (label, input) => el('label', {}, label, input);

function renderFeaturePanels() {
  const has = (name) => state.commands.has(name);
  const coupon = $('coupon-panel');
  if (has('drop_coupon')) {
    coupon.replaceChildren(
      el('div', { class: 'row' },
        field('Title', el('input', { id: 'coupon-title', value: '¥10 off orders from ¥99' })),
        field('Kind', el('select', { id: 'coupon-kind' },
          el('option', { value: 'threshold' }, 'off an order from…'),
          el('option', { value: 'no_threshold' }, 'off any order'),
          el('option', { value: 'percent' }, '% off')))),
      el('div', { class: 'row' },
        field('Value (¥ or %)', el('input', { id: 'coupon-value', type: 'number', min: '1', value: '10' })),
        field('From (¥)', el('input', { id: 'coupon-threshold', type: 'number', min: '0', value: '99' })),
        field('Quantity', el('input', { id: 'coupon-quantity', type: 'number', min: '1', value: '100' }))),
      el('div', { class: 'row' },
        el('button', { class: 'btn primary', type: 'button', id: 'coupon-drop', onclick: dropCoupon }, '🎟️ Drop coupon')),
      el('div', { class: 'sales', id: 'coupons' }));
  } else {
    coupon.replaceChildren(el('div', { class: 'note', id: 'coupon-missing' },
      'This engine has no coupon commands (drop_coupon).'));
  }
  const lottery = $('lottery-panel');
  if (has('create_lottery') && has('draw_lottery')) {
    lottery.replaceChildren(
      el('div', { class: 'row' },
        field('Prize', el('input', { id: 'lottery-prize', value: 'A Yixing clay teapot' })),
        field('Winners', el('input', { id: 'lottery-winners', type: 'number', min: '1', value: '3' }))),
      el('div', { class: 'row' },
        field('Enter by', el('select', { id: 'lottery-entry' },
          el('option', { value: 'keyword' }, 'sending a keyword'),
          el('option', { value: 'follow' }, 'following'),
          el('option', { value: 'both' }, 'either'))),
        field('Keyword', el('input', { id: 'lottery-keyword', value: 'teapot' })),
        field('Draw in (s)', el('input', { id: 'lottery-draw-in', type: 'number', min: '0', value: '0', title: '0: draw by hand' }))),
      el('div', { class: 'row' },
        el('button', { class: 'btn primary', type: 'button', id: 'lottery-start', onclick: startLottery }, '🎁 Start lottery')),
      el('div', { class: 'sales', id: 'lotteries' }));
  } else {
    lottery.replaceChildren(el('div', { class: 'note', id: 'lottery-missing' },
      'This engine has no lottery commands (create_lottery, draw_lottery).'));
  }
  if (state.chat) {
    state.chat.on('coupon', renderCoupons);
    state.chat.on('lottery', renderLotteries);
    state.chat.on('snapshot', () => { renderCoupons(); renderLotteries(); });
  }
}

async function dropCoupon() {
  const kind = $('coupon-kind').value;
  const value = Number($('coupon-value').value);
  const params = {
    batch: newId('c'),
    kind,
    value: kind === 'percent' ? Math.round(value) : Math.round(value * 100),
    quantity: Number($('coupon-quantity').value),
    title: $('coupon-title').value.trim() || undefined,
  };
  if (kind === 'threshold') params.threshold = Math.round(Number($('coupon-threshold').value) * 100);
  await run('drop_coupon', params);
}

async function startLottery() {
  const entry = $('lottery-entry').value;
  const params = {
    lottery: newId('l'),
    prize: $('lottery-prize').value.trim(),
    winners: Number($('lottery-winners').value),
    entry,
  };
  if (entry !== 'follow') params.keyword = $('lottery-keyword').value.trim();
  const drawIn = Number($('lottery-draw-in').value);
  if (drawIn > 0) params.draw_in_s = drawIn;
  await run('create_lottery', params);
}

function renderCoupons() {
  const box = $('coupons');
  if (!box || !state.chat) return;
  box.replaceChildren(...[...state.chat.room.coupons.values()].map((c) => el('div', { class: 'sale-row', dataset: { batch: c.batch } },
    el('div', { class: 'info' }, el('b', {}, c.title || c.batch),
      el('div', {}, c.ended ? 'closed' : `${c.left} / ${c.quantity} left`),
      el('div', { class: 'bar' }, el('div', { style: `width:${c.quantity ? (100 * c.left) / c.quantity : 0}%` }))),
    c.ended ? null : el('button', { class: 'btn small', type: 'button', onclick: () => run('end_coupon', { batch: c.batch }) }, 'End'))));
}

function renderLotteries() {
  const box = $('lotteries');
  if (!box || !state.chat) return;
  box.replaceChildren(...[...state.chat.room.lotteries.values()].map((l) => el('div', { class: 'sale-row', dataset: { lottery: l.lottery } },
    el('div', { class: 'info' }, el('b', {}, l.prize),
      el('div', { class: 'entrants' }, l.cancelled ? 'cancelled'
        : l.drawn ? `drawn: ${l.drawn.map((w) => w.name || w.user).join(', ') || 'no entrants'}`
          : `${l.entrants} entered · ${l.winners} to win${l.keyword ? ` · "${l.keyword}"` : ''}`)),
    l.drawn || l.cancelled ? null : el('button', { class: 'btn small', type: 'button', onclick: () => run('draw_lottery', { lottery: l.lottery }) }, 'Draw'),
    l.drawn || l.cancelled ? null : el('button', { class: 'btn small', type: 'button', onclick: () => run('cancel_lottery', { lottery: l.lottery }) }, 'Cancel'))));
}
