// The demo viewer page: everything a viewer sees, on top of live-client.js.
// Open /demo/viewer.html?room=demo&user=alice (dev mode mints the token), or
// /demo/viewer.html#token=<JWT>&ws=<viewer URL> against any engine.
import { LiveClient, salePhase } from './live-client.js';
import { clock, count, demoSession, el, money, pageParams, reason, userColor } from './demo.js';

const $ = (id) => document.getElementById(id);
const EMOJI = ['😀', '😂', '😍', '🥰', '😎', '🤩', '👏', '🙌', '🔥', '❤️', '💯', '🎉', '👍', '🙏', '😮',
  '😭', '🤔', '💪', '✨', '🌸', '🍵', '🛒', '💰', '🎁'];
const CHAT_KEPT = 200; // messages kept on screen
const LOG_KEPT = 5000; // chat ids kept in window.demo.chatLog (tests read it)

const params = pageParams();
const state = {
  client: null,
  session: null,
  sale: null, // the flash sale shown in the popup
  grabbing: false,
  chatLog: [], // {id, seq, user, text}: every chat message received, in order
  welcomes: [], // {recovery, reason, seq}: every welcome
  popups: [], // {id, kind}: every popup shown
  results: [], // grab results
  countdowns: [], // every distinct countdown text shown, in order
  states: [], // every connection state, in order
};
window.demo = state;

main().catch((err) => {
  setConn('closed', String(err.message || err));
  toast(String(err.message || err), 'error', 0);
});

async function main() {
  const session = await demoSession(params, 'viewer');
  state.session = session;
  $('room-title').textContent = params.get('title') || `Room ${session.room}`;
  const client = new LiveClient({
    url: session.wsUrl,
    token: session.token,
    codec: params.get('codec') === 'msgpack' ? 'msgpack' : 'json',
    room: session.room,
    // tuning for demos and tests: ?ping_ms=1000&dead_ms=3000 notices a silent network sooner
    ...(params.get('ping_ms') ? { pingIntervalMs: Number(params.get('ping_ms')) } : {}),
    ...(params.get('dead_ms') ? { deadAfterMs: Number(params.get('dead_ms')) } : {}),
  });
  state.client = client;
  wire(client);
  setupComposer(client);
  client.connect();
  setInterval(tick, 250);
}

// --------------------------------------------------------------------------------------------
// client events -> page

function wire(client) {
  client.on('state', ({ state: s, attempt, delayMs }) => {
    state.states.push(s);
    const text = {
      connecting: 'Connecting…',
      open: '● Live',
      reconnecting: delayMs !== undefined
        ? `Reconnecting in ${Math.ceil(delayMs / 1000)}s…` : `Reconnecting… (${attempt})`,
      closed: 'Disconnected',
      idle: '…',
    }[s];
    setConn(s, text);
  });
  client.on('close', ({ error, willReconnect, reason: why }) => {
    if (!willReconnect) toast(`Disconnected: ${error ? reason(error) : why || 'closed'}`, 'error', 0);
  });
  client.on('welcome', (welcome) => {
    state.welcomes.push({ recovery: welcome.recovery, reason: welcome.reason, seq: welcome.seq });
    document.body.dataset.recovery = welcome.recovery;
    if (welcome.recovery === 'resumed') systemLine('Reconnected: caught up with what you missed');
    if (welcome.recovery === 'resync') {
      systemLine('Reconnected after a long gap: some messages could not be recovered');
    }
  });
  client.on('resync', () => systemLine('The room was reset: some messages could not be recovered'));
  client.on('snapshot', () => {
    state.snapshotPopup = client.room.popup?.id; // shown on joining: no toast for it
    renderAll(client);
  });
  client.on('status', ({ degraded }) => {
    $('conn').dataset.degraded = degraded ? 'true' : 'false';
    if (degraded) toast('The room is catching up… messages may be late', 'warn', 4000);
  });
  client.on('chat', (msgs) => msgs.forEach((m) => addChat(m, client)));
  client.on('likes', () => renderLikes(client));
  client.on('online', ({ count: n }) => { $('online-count').textContent = count(n); });
  client.on('pinned', (msg) => renderPinned(msg));
  client.on('phrases', (phrases) => renderPhrases(phrases, client));
  client.on('cards', (cards) => renderCard(cards));
  client.on('sale', (sale) => {
    if (!state.sale || state.sale.sale === sale.sale) showSale(sale);
  });
  client.on('popup', (popup) => onPopup(popup, client));
  client.on('coupon', (coupon) => showCoupon(coupon, client));
  client.on('lottery', (lottery) => showLottery(lottery, client));
  client.on('error', (error) => {
    if (error.rid === undefined) toast(reason(error.code), 'error');
  });
}

function setConn(s, text) {
  const conn = $('conn');
  conn.dataset.state = s;
  conn.textContent = text;
}

function renderAll(client) {
  const room = client.room;
  $('online-count').textContent = count(room.online);
  renderLikes(client);
  renderPinned(room.pinned);
  renderPhrases(room.phrases, client);
  renderCard(room.cards);
  const sales = [...room.sales.values()].filter((s) => salePhase(s, client.serverNow()).phase !== 'ended');
  if (sales.length) showSale(sales[0]);
  const notice = room.popup?.kind === 'stream' ? room.popup : null;
  renderStream(notice?.data);
  const coupon = [...room.coupons.values()].find((c) => !c.ended && c.left > 0);
  if (coupon) showCoupon(coupon, client);
  const lottery = [...room.lotteries.values()].at(-1);
  if (lottery) showLottery(lottery, client);
}

// --------------------------------------------------------------------------------------------
// chat

function addChat(m, client) {
  state.chatLog.push({ id: m.id, seq: m.seq, user: m.user, text: m.text });
  if (state.chatLog.length > LOG_KEPT) state.chatLog.splice(0, state.chatLog.length - LOG_KEPT);
  const chat = $('chat');
  const mine = m.user === client.welcome?.user;
  const line = el('div', {
    class: `msg${mine ? ' mine' : ''}${m.role ? ' staff' : ''}`,
    dataset: { id: m.id, seq: m.seq ?? '', user: m.user },
  },
  m.role ? el('span', { class: 'badge' }, m.role === 'anchor' ? 'Anchor' : 'Staff') : null,
  el('span', { class: 'name', style: `color:${userColor(m.user)}` }, `${m.name}:`),
  ' ',
  m.reply_to ? el('span', { class: 'at' }, `@${m.reply_to.user} `) : null,
  el('span', { class: 'text' }, m.text));
  appendChat(chat, line);
}

function systemLine(text) {
  appendChat($('chat'), el('div', { class: 'msg system' }, text));
}

function appendChat(chat, line) {
  const atBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 40;
  chat.append(line);
  while (chat.childElementCount > CHAT_KEPT) chat.firstElementChild.remove();
  if (atBottom) chat.scrollTop = chat.scrollHeight;
}

function setupComposer(client) {
  const input = $('chat-input');
  const panel = $('emoji-panel');
  for (const emoji of EMOJI) {
    panel.append(el('button', {
      type: 'button', class: 'emoji',
      onclick: () => { insertAtCursor(input, emoji); input.focus(); },
    }, emoji));
  }
  $('emoji-toggle').addEventListener('click', () => {
    panel.hidden = !panel.hidden;
    $('emoji-toggle').setAttribute('aria-expanded', String(!panel.hidden));
  });
  $('composer').addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    panel.hidden = true;
    await send(() => client.sendDanmaku(text), () => { input.value = text; });
  });
  $('like-button').addEventListener('click', () => {
    client.like(1);
    renderLikes(client);
    floatHeart();
  });
  $('product-buy').addEventListener('click', () => {
    const id = $('product-card').dataset.product;
    if (id) client.click(id).catch(() => {});
    toast('Opening the product page… (the host app takes over here)', 'info');
  });
  $('seckill-grab').addEventListener('click', () => grab(client));
  $('follow').addEventListener('click', () => follow(client));
  for (const button of document.querySelectorAll('[data-close]')) {
    button.addEventListener('click', () => { $(button.dataset.close).hidden = true; });
  }
}

async function send(action, restore) {
  $('form-error').textContent = '';
  try {
    await action();
  } catch (err) {
    $('form-error').textContent = reason(err.code) + (err.retryAfterMs > 0 ? ` (wait ${Math.ceil(err.retryAfterMs / 1000)}s)` : '');
    if (restore && err.code !== 'muted' && err.code !== 'blocked') restore();
  }
}

function insertAtCursor(input, text) {
  const start = input.selectionStart ?? input.value.length;
  const end = input.selectionEnd ?? input.value.length;
  input.value = input.value.slice(0, start) + text + input.value.slice(end);
  input.selectionStart = input.selectionEnd = start + text.length;
}

function renderPhrases(phrases, client) {
  const box = $('phrases');
  box.replaceChildren(...phrases.map((p) => el('button', {
    type: 'button', class: 'chip', dataset: { phrase: p.id },
    onclick: () => send(() => client.sendPhrase(p.id)),
  }, p.text)));
}

function renderPinned(msg) {
  $('pinned').hidden = !msg;
  $('pinned-text').textContent = msg ? msg.text : '';
}

// --------------------------------------------------------------------------------------------
// likes

function renderLikes(client) {
  const total = client.room.likes + client.pendingLikes;
  const node = $('like-total');
  node.dataset.total = String(client.room.likes);
  node.textContent = count(total);
}

function floatHeart() {
  const heart = el('span', { class: 'float-heart', style: `left:${20 + Math.random() * 50}px` },
    ['❤️', '💖', '💗', '💕'][Math.floor(Math.random() * 4)]);
  $('hearts').append(heart);
  setTimeout(() => heart.remove(), 1600);
}

// --------------------------------------------------------------------------------------------
// product card

function renderCard(cards) {
  const card = $('product-card');
  const shown = cards.mounted.find((c) => c.id === cards.pinned) || cards.mounted.at(-1);
  card.hidden = !shown;
  if (!shown) return;
  card.dataset.product = shown.id;
  card.classList.toggle('is-pinned', shown.id === cards.pinned);
  $('product-image').src = shown.image;
  $('product-name').textContent = shown.name;
  $('product-price').textContent = money(shown.price);
  $('product-stock').textContent = `${shown.stock} in stock`;
}

// --------------------------------------------------------------------------------------------
// popups

function onPopup(popup, client) {
  state.popups.push({ id: popup.id, kind: popup.kind });
  const data = popup.data || {};
  if (popup.id === state.snapshotPopup && popup.kind !== 'stream') return;
  switch (popup.kind) {
    case 'product_card':
      if (data.action === 'mount' || data.action === 'pin') toast(`🛍️ ${data.card?.name ?? 'New product'} is on`, 'info');
      return;
    case 'seckill': return undefined; // the `sale` event shows it
    case 'sold_out': return toast('⚡ Sold out!', 'warn');
    case 'seckill_ended': return undefined;
    case 'stream': return renderStream(data);
    case 'room':
      return toast(data.status === 'live' ? '🔴 The live has started' : 'The live has ended', 'info', 5000);
    case 'coupon': case 'coupon_ended': case 'coupon_all_claimed':
    case 'lottery': case 'lottery_winners': case 'lottery_cancelled':
      return undefined; // the `coupon` and `lottery` events show them
    default: {
      const text = data.text || data.title || data.message || popup.kind;
      return toast(String(text), 'info', 5000);
    }
  }
}

function renderStream(data) {
  const box = $('stream-notice');
  const interrupted = data?.state === 'interrupted';
  box.hidden = !interrupted;
  box.textContent = interrupted ? `📡 ${data.text || 'The stream is interrupted — back soon'}` : '';
  if (data?.state === 'resumed') toast(`📡 ${data.text || 'The stream is back'}`, 'info');
}

let zTop = 10;
/** Show a popup card above the others. */
function front(box) {
  box.hidden = false;
  box.style.zIndex = String(++zTop);
}

function toast(text, kind = 'info', ms = 3000) {
  const node = el('div', { class: `toast ${kind}` }, text);
  $('toasts').append(node);
  if (ms) setTimeout(() => node.remove(), ms);
}

// --------------------------------------------------------------------------------------------
// flash sale

function showSale(sale) {
  const same = state.sale?.sale === sale.sale;
  state.sale = sale;
  const box = $('seckill');
  if (!same) {
    front(box);
    box.dataset.sale = sale.sale;
    $('seckill-result').textContent = '';
    $('seckill-result').dataset.code = '';
  }
  $('seckill-image').src = sale.image || 'img/product.svg';
  $('seckill-name').textContent = sale.name || sale.product;
  $('seckill-price').textContent = money(sale.price);
  $('seckill-list-price').textContent = sale.list_price > sale.price ? money(sale.list_price) : '';
  $('seckill-limit').textContent = `Limit ${sale.limit} per person`;
  const stock = $('seckill-stock');
  stock.dataset.left = String(sale.left);
  stock.dataset.stock = String(sale.stock);
  stock.textContent = sale.left > 0 ? `${sale.left} / ${sale.stock} left` : `Sold out (${sale.stock} sold)`;
  $('seckill-stock-fill').style.width = `${sale.stock ? (100 * sale.left) / sale.stock : 0}%`;
  tick();
}

function tick() {
  const client = state.client;
  const sale = state.sale;
  if (!client || !sale) return;
  const { phase, msLeft } = salePhase(sale, client.serverNow());
  const countdown = $('seckill-countdown');
  countdown.dataset.phase = phase;
  countdown.dataset.msLeft = String(Math.round(msLeft));
  const text = {
    upcoming: `Starts in ${clock(msLeft)}`,
    open: `Ends in ${clock(msLeft)}`,
    sold_out: 'Sold out',
    ended: 'The sale has ended',
  }[phase];
  if (countdown.textContent !== text) {
    countdown.textContent = text;
    state.countdowns.push(text);
    if (state.countdowns.length > 1000) state.countdowns.shift();
  }
  const button = $('seckill-grab');
  button.disabled = phase !== 'open' || state.grabbing;
  button.textContent = state.grabbing ? 'Grabbing…' : phase === 'upcoming' ? 'Get ready' : 'Grab now';
}

async function grab(client) {
  const sale = state.sale;
  if (!sale || state.grabbing) return;
  state.grabbing = true;
  tick();
  const out = $('seckill-result');
  out.dataset.code = '';
  out.textContent = '';
  try {
    const result = await client.grab(sale.sale);
    state.results.push(result);
    out.dataset.code = result.ok ? 'ok' : result.code;
    if (result.ok) {
      const left = result.data.expires_at - client.serverNow();
      out.textContent = `🎉 Got it! ${result.data.qty} reserved — pay within ${clock(left)}`;
      out.className = 'seckill-result ok';
    } else {
      out.textContent = reason(result.code);
      out.className = 'seckill-result no';
    }
  } catch (err) {
    out.dataset.code = err.code;
    out.textContent = reason(err.code);
    out.className = 'seckill-result no';
  } finally {
    state.grabbing = false;
    tick();
  }
}

// --------------------------------------------------------------------------------------------
// coupons, lotteries, follow

function couponValue(c) {
  return c.kind === 'percent' ? `${c.value}% off` : `${money(c.value)} off`;
}

function showCoupon(coupon, client) {
  const box = $('coupon');
  const fresh = box.dataset.batch !== coupon.batch;
  box.dataset.batch = coupon.batch;
  if (fresh) {
    front(box);
    $('coupon-result').textContent = '';
    $('coupon-result').dataset.code = '';
  }
  $('coupon-amount').textContent = couponValue(coupon);
  $('coupon-title').textContent = coupon.title || 'Coupon';
  const meta = [];
  if (coupon.kind === 'threshold' && coupon.threshold) meta.push(`on orders from ${money(coupon.threshold)}`);
  if (coupon.kind === 'fixed' && coupon.product) meta.push(`on ${coupon.product}`);
  if (coupon.kind === 'no_threshold') meta.push('on any order');
  meta.push(coupon.ended ? 'claims closed' : `${coupon.left} / ${coupon.quantity} left`);
  $('coupon-meta').textContent = meta.join(' · ');
  $('coupon-meta').dataset.left = String(coupon.left);
  const claim = $('coupon-claim');
  const claimed = $('coupon-result').dataset.code === 'ok';
  claim.disabled = coupon.ended || coupon.left <= 0 || claimed;
  claim.textContent = claimed ? 'Claimed ✓' : coupon.left <= 0 ? 'All claimed' : 'Claim';
  claim.onclick = async () => {
    claim.disabled = true;
    const result = $('coupon-result');
    try {
      const answer = await client.claimCoupon(coupon.batch);
      result.dataset.code = answer.ok ? 'ok' : answer.code;
      result.textContent = answer.ok ? '🎉 Claimed: it is in your account' : reason(answer.code);
    } catch (err) {
      result.dataset.code = err.code;
      result.textContent = reason(err.code);
    } finally {
      showCoupon(client.room.coupons.get(coupon.batch) || coupon, client);
    }
  };
}

let lotteryTimer = null;

function showLottery(lottery, client) {
  const box = $('lottery');
  const fresh = box.dataset.lottery !== lottery.lottery;
  box.dataset.lottery = lottery.lottery;
  box.dataset.state = lottery.cancelled ? 'cancelled' : lottery.drawn ? 'drawn' : 'open';
  if (fresh || ((lottery.drawn || lottery.cancelled) && box.dataset.shown !== box.dataset.state)) {
    box.dataset.shown = box.dataset.state;
    front(box);
  }
  if (fresh) {
    $('lottery-result').textContent = '';
    $('lottery-result').dataset.code = '';
  }
  $('lottery-prize').textContent = lottery.prize;
  const me = client.welcome?.user;
  const winners = lottery.drawn || [];
  $('lottery-winners').replaceChildren(...winners.map((w) => el('li', { class: w.user === me ? 'me' : '', dataset: { user: w.user } },
    w.user === me ? `${w.name || w.user} (you!)` : (w.name || w.user))));
  const won = winners.some((w) => w.user === me);
  const ways = [];
  if (lottery.entry !== 'follow' && lottery.keyword) ways.push(`send "${lottery.keyword}" in the chat`);
  if (lottery.entry !== 'keyword') ways.push('follow the anchor');
  $('lottery-how').textContent = lottery.cancelled ? 'This lottery was called off.'
    : lottery.drawn ? (won ? '🎉 You won! Claim it in the app within 24 h.' : `Winners (${lottery.entrants} entered):`)
      : `${lottery.winners} winner${lottery.winners > 1 ? 's' : ''} · ${lottery.entrants} entered · to enter, ${ways.join(' or ')}`;
  $('lottery-how').dataset.entrants = String(lottery.entrants);
  const enter = $('lottery-enter');
  const entered = $('lottery-result').dataset.code === 'ok';
  enter.hidden = Boolean(lottery.drawn || lottery.cancelled);
  enter.disabled = entered;
  enter.textContent = entered ? 'You are in ✓' : lottery.entry === 'follow' ? 'Follow to enter'
    : lottery.keyword ? `Send "${lottery.keyword}"` : 'Enter';
  enter.onclick = async () => {
    enter.disabled = true;
    const result = $('lottery-result');
    try {
      if (lottery.entry === 'follow') {
        const answer = await client.follow();
        const inIt = (answer.data?.lotteries || []).includes(lottery.lottery);
        result.dataset.code = inIt ? 'ok' : 'lottery_closed';
        result.textContent = inIt ? 'Following ✓ You are in the draw. Good luck!' : reason('lottery_closed');
        markFollowed();
      } else if (lottery.keyword) {
        await client.sendDanmaku(lottery.keyword);
        result.dataset.code = 'ok';
        result.textContent = 'You are in the draw. Good luck!';
      } else {
        const answer = await client.enterLottery(lottery.lottery);
        result.dataset.code = answer.ok ? 'ok' : answer.code;
        result.textContent = answer.ok ? 'You are in the draw. Good luck!' : reason(answer.code);
      }
    } catch (err) {
      result.dataset.code = err.code;
      result.textContent = reason(err.code);
    } finally {
      showLottery(client.room.lotteries.get(lottery.lottery) || lottery, client);
    }
  };
  clearInterval(lotteryTimer);
  const countdown = $('lottery-countdown');
  countdown.textContent = '';
  if (!lottery.drawn && !lottery.cancelled && lottery.draw_at) {
    const draw = () => {
      const left = lottery.draw_at - client.serverNow();
      countdown.textContent = left > 0 ? `Draw in ${clock(left)}` : 'Drawing…';
    };
    draw();
    lotteryTimer = setInterval(draw, 250);
  }
}

function markFollowed() {
  const button = $('follow');
  button.dataset.following = 'true';
  button.textContent = '✓ Following';
}

async function follow(client) {
  try {
    const answer = await client.follow();
    markFollowed();
    const n = answer.data?.lotteries?.length || 0;
    toast(n ? `Following: you entered ${n} lottery draw${n > 1 ? 's' : ''}` : 'Following the anchor', 'info');
  } catch (err) {
    toast(reason(err.code), 'error');
  }
}
