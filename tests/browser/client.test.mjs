// Unit tests of live-client.js and live-control.js with a scripted WebSocket (node --test;
// tests/browser/test_client_js.py runs them). What a real engine does is in run.mjs.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { LiveClient, LiveError, salePhase } from '../../engine/web/static/live-client.js';
import { ControlClient, ControlError } from '../../engine/web/static/live-control.js';
import { decode, encode } from '../../engine/web/static/msgpack.js';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition, what, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** A WebSocket the test drives: `server*` methods play the engine's side. */
class FakeSocket {
  static all = [];

  constructor(url, protocols) {
    this.url = new URL(url);
    this.protocols = protocols;
    this.protocol = '';
    this.readyState = 0;
    this.sent = [];
    this.closed = null;
    FakeSocket.all.push(this);
  }

  send(data) {
    assert.equal(this.readyState, 1, 'send on an open socket only');
    this.sent.push(typeof data === 'string' ? JSON.parse(data) : decode(data));
  }

  close(code, reason) {
    this.closed = { code, reason };
    this.readyState = 3;
  }

  serverAccept(protocol = this.protocols[0]) {
    this.protocol = protocol;
    this.readyState = 1;
    this.onopen?.({});
  }

  serverSend(frame) {
    const data = this.protocol === 'msgpack' ? encode(frame).buffer : JSON.stringify(frame);
    this.onmessage?.({ data });
  }

  serverClose(code, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  sentOf(type) {
    return this.sent.filter((m) => m.type === type);
  }
}

const last = () => FakeSocket.all.at(-1);
const clients = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  FakeSocket.all = [];
});

function snapshot(extra = {}) {
  return { online: 1, likes: 0, pinned: null, popup: null, phrases: [], cards: { mounted: [], pinned: null }, sales: [], ...extra };
}

function welcome(extra = {}) {
  return {
    type: 'welcome', room: 'r1', user: 'alice', role: 'viewer', conn: 'c1', node: 'n1', epoch: 'e1',
    seq: 0, recovery: 'fresh', heartbeat: 15, limits: { max_message_bytes: 4096, max_text_chars: 200, max_likes: 100 },
    snapshot: snapshot(), ...extra,
  };
}

function client(options = {}) {
  const c = new LiveClient({ url: 'ws://engine/v1/ws', token: 't0', room: 'r1', WebSocket: FakeSocket,
    backoffBaseMs: 5, backoffMaxMs: 20, likeFlushMs: 5, ...options });
  clients.push(c);
  return c;
}

async function joined(c, extra) {
  c.connect();
  await until(() => FakeSocket.all.length > 0, 'a socket');
  const ws = last();
  ws.serverAccept();
  ws.serverSend(welcome(extra));
  return ws;
}

test('connects with the token, room and codec; a welcome opens it and sets the room', async () => {
  const c = client({ codec: 'msgpack' });
  const states = [];
  c.on('state', (s) => states.push(s.state));
  const ws = await joined(c, { seq: 7, snapshot: snapshot({ likes: 42, phrases: [{ id: 0, text: 'hi' }] }) });
  assert.equal(ws.url.searchParams.get('token'), 't0');
  assert.equal(ws.url.searchParams.get('room'), 'r1');
  assert.equal(ws.url.searchParams.get('since'), null, 'a first connection has no position');
  assert.deepEqual(ws.protocols, ['msgpack']);
  assert.deepEqual(states, ['connecting', 'open']);
  assert.equal(c.room.likes, 42);
  assert.equal(c.seq, 7);
  assert.equal(c.epoch, 'e1');
});

test('reconnects after a drop and resumes from the last position and epoch', async () => {
  const c = client();
  const ws = await joined(c, { seq: 3 });
  const chats = [];
  c.on('chat', (msgs) => chats.push(...msgs.map((m) => m.text)));
  ws.serverSend({ type: 'chat', msgs: [{ id: 'm4', seq: 4, text: 'a' }, { id: 'm5', seq: 5, text: 'b' }], seq: 5 });
  ws.serverSend({ type: 'result', rid: 'x', ok: true, data: { seq: 99 } }); // data.seq is no position
  ws.serverClose(1006);
  assert.equal(c.state, 'reconnecting');
  await until(() => FakeSocket.all.length === 2, 'a second socket');
  const again = last();
  assert.equal(again.url.searchParams.get('since'), '5');
  assert.equal(again.url.searchParams.get('epoch'), 'e1');
  again.serverAccept();
  again.serverSend(welcome({ seq: 5, recovery: 'resumed' }));
  again.serverSend({ type: 'chat', msgs: [{ id: 'm6', seq: 6, text: 'c' }], seq: 6 });
  assert.deepEqual(chats, ['a', 'b', 'c']);
  assert.deepEqual(c.recoveries, { fresh: 1, resumed: 1 });
  assert.equal(c.seq, 6);
});

test('a resync starts over from its snapshot and position', async () => {
  const c = client();
  const ws = await joined(c, { seq: 3 });
  const seen = [];
  c.on('snapshot', (s) => seen.push(s.recovery));
  ws.serverSend({ type: 'resync', epoch: 'e2', seq: 100, reason: 'epoch_changed', snapshot: snapshot({ likes: 9 }) });
  assert.deepEqual(seen, ['resync']);
  assert.equal(c.epoch, 'e2');
  assert.equal(c.seq, 100);
  assert.equal(c.room.likes, 9);
});

test('status frames say when the room is degraded', async () => {
  const c = client();
  const ws = await joined(c);
  const seen = [];
  c.on('status', (s) => seen.push(s.degraded));
  ws.serverSend({ type: 'status', degraded: true, reason: 'redis' });
  ws.serverSend({ type: 'status', degraded: false });
  assert.deepEqual(seen, [true, false]);
  assert.equal(c.room.degraded, false);
});

test('answers are matched by rid; error frames reject with the code', async () => {
  const c = client();
  const ws = await joined(c);
  const sent = c.sendDanmaku('hello 👋');
  const [message] = ws.sentOf('danmaku');
  assert.equal(message.text, 'hello 👋');
  ws.serverSend({ type: 'result', rid: message.rid, ok: true, data: { id: 'm1', seq: 1 } });
  assert.deepEqual(await sent, { id: 'm1', seq: 1 });
  const refused = c.sendDanmaku('again');
  const [, second] = ws.sentOf('danmaku');
  ws.serverSend({ type: 'error', rid: second.rid, code: 'rate_limited', message: 'slow down', retry_after_ms: 1500 });
  await assert.rejects(refused, (err) => err instanceof LiveError && err.code === 'rate_limited' && err.retryAfterMs === 1500);
  await assert.rejects(c.sendDanmaku('x'.repeat(201)), (err) => err.code === 'too_large');
});

test('a grab unanswered when the connection drops is sent again with the same rid; a danmaku is not', async () => {
  const c = client();
  const ws = await joined(c);
  const grab = c.grab('sale1');
  const chat = c.sendDanmaku('lost?');
  const [first] = ws.sentOf('grab');
  ws.serverClose(1006);
  await assert.rejects(chat, (err) => err.code === 'disconnected');
  await until(() => FakeSocket.all.length === 2, 'a second socket');
  const again = last();
  again.serverAccept();
  again.serverSend(welcome({ recovery: 'resumed' }));
  const [retry] = again.sentOf('grab');
  assert.equal(retry.rid, first.rid, 'the same idempotency key');
  assert.equal(retry.sale, 'sale1');
  again.serverSend({ type: 'result', rid: retry.rid, ok: true, data: { sale: 'sale1', hold: 'sale1.1', qty: 1, replayed: true } });
  assert.equal((await grab).data.hold, 'sale1.1');
});

test('requests made while disconnected wait and go after the welcome', async () => {
  const c = client();
  const ws = await joined(c);
  ws.serverClose(1006);
  const click = c.click('tea');
  await until(() => FakeSocket.all.length === 2, 'a second socket');
  const again = last();
  again.serverAccept();
  assert.equal(again.sentOf('click').length, 0, 'nothing before the welcome');
  again.serverSend(welcome({ recovery: 'resumed' }));
  const [sent] = again.sentOf('click');
  again.serverSend({ type: 'result', rid: sent.rid, ok: true, data: { product: 'tea', clicks: 1 } });
  assert.equal((await click).data.clicks, 1);
});

test('likes are summed into one message per flush', async () => {
  const c = client();
  const ws = await joined(c);
  for (let i = 0; i < 7; i++) c.like();
  assert.equal(c.pendingLikes, 7);
  await until(() => ws.sentOf('like').length > 0, 'a like message');
  assert.deepEqual(ws.sentOf('like').map((m) => m.count), [7]);
  c.like(250);
  await until(() => ws.sentOf('like').length === 4, 'likes over the per-message maximum');
  assert.deepEqual(ws.sentOf('like').map((m) => m.count), [7, 100, 100, 50]);
});

test('each popup is shown once; stock updates keep the newest version', async () => {
  const c = client();
  const ws = await joined(c);
  const popups = [];
  c.on('popup', (p) => popups.push(p.id));
  const sale = { sale: 's1', product: 'tea', name: 'Tea', image: '', list_price: 200, price: 100, stock: 10, left: 10, ver: 1, limit: 1, start_at: 0, end_at: Date.now() + 60000 };
  ws.serverSend({ type: 'popup', popup: { id: 'p1', kind: 'seckill', data: sale, ts: Date.now() }, seq: 1 });
  ws.serverSend({ type: 'popup', popup: { id: 'p1', kind: 'seckill', data: sale, ts: Date.now() }, seq: 1 });
  ws.serverSend({ type: 'stock', sale: 's1', left: 4, stock: 10, ver: 6 });
  ws.serverSend({ type: 'stock', sale: 's1', left: 7, stock: 10, ver: 3 }); // older: ignored
  assert.deepEqual(popups, ['p1']);
  assert.equal(c.room.sales.get('s1').left, 4);
  ws.serverSend({ type: 'popup', popup: { id: 'p2', kind: 'sold_out', data: { sale: 's1' }, ts: Date.now() }, seq: 2 });
  assert.equal(salePhase(c.room.sales.get('s1'), Date.now()).phase, 'sold_out');
  ws.serverSend({ type: 'popup', popup: { id: 'p3', kind: 'seckill_ended', data: { sale: 's1', left: 0 }, ts: Date.now() }, seq: 3 });
  assert.equal(salePhase(c.room.sales.get('s1'), Date.now()).phase, 'ended');
});

test('a sale counts down to its start, then to its end', () => {
  const sale = { start_at: 10_000, end_at: 70_000, left: 5 };
  assert.deepEqual(salePhase(sale, 4_000), { phase: 'upcoming', msLeft: 6_000 });
  assert.deepEqual(salePhase(sale, 40_000), { phase: 'open', msLeft: 30_000 });
  assert.deepEqual(salePhase(sale, 70_000), { phase: 'ended', msLeft: 0 });
});

test('pongs give the round trip and the server clock', async () => {
  const c = client();
  const ws = await joined(c);
  const [ping] = ws.sentOf('ping'); // sent right after the welcome
  ws.serverSend({ type: 'pong', rid: ping.rid, ts: Date.now() + 60_000 });
  assert.equal(typeof c.rttMs, 'number');
  assert.ok(Math.abs(c.clockOffsetMs - 60_000) < 1000, `offset ${c.clockOffsetMs}`);
});

test('a silent connection is dropped by the client and replaced', async () => {
  const c = client({ pingIntervalMs: 10, deadAfterMs: 40 });
  const ws = await joined(c);
  await until(() => FakeSocket.all.length === 2, 'a new socket after the silence');
  assert.equal(ws.closed.code, 4000);
});

test('a quiet connection that answers its pings is kept, however late the timers fire', async () => {
  // a background tab: timer ticks (60 ms here) far apart compared with deadAfterMs (30 ms)
  const c = client({ pingIntervalMs: 60, deadAfterMs: 30 });
  const ws = await joined(c);
  const answered = new Set();
  const deadline = Date.now() + 400;
  while (Date.now() < deadline) {
    for (const ping of ws.sentOf('ping')) {
      if (!answered.has(ping.rid)) {
        answered.add(ping.rid);
        ws.serverSend({ type: 'pong', rid: ping.rid, ts: Date.now() });
      }
    }
    await sleep(2);
  }
  assert.ok(answered.size >= 3, `pinged ${answered.size} times`);
  assert.equal(FakeSocket.all.length, 1, 'never dropped');
  assert.equal(c.state, 'open');
});

test('refusals a retry cannot fix stop the client; a token provider replaces an expired token', async () => {
  const banned = client();
  const closes = [];
  banned.on('close', (info) => closes.push(info));
  const ws = await joined(banned);
  ws.serverClose(4013, 'banned: until 1767261600000');
  assert.equal(banned.state, 'closed');
  assert.equal(closes[0].error, 'banned');
  assert.equal(closes[0].willReconnect, false);
  await sleep(30);
  assert.equal(FakeSocket.all.length, 1, 'no reconnect after a ban');

  let n = 0;
  const refreshing = client({ token: () => `t${++n}` });
  const first = await joined(refreshing);
  assert.equal(first.url.searchParams.get('token'), 't1');
  first.serverClose(4002, 'token_expired: token expired');
  await until(() => FakeSocket.all.length === 3, 'a reconnect with a new token');
  assert.equal(last().url.searchParams.get('token'), 't2');
});

test('joining too often waits as long as the engine says', async () => {
  const c = client();
  const delays = [];
  c.on('state', (s) => { if (s.delayMs !== undefined) delays.push(s.delayMs); });
  c.connect();
  await until(() => FakeSocket.all.length === 1, 'a socket');
  last().serverClose(4029, 'rate_limited: retry after 120 ms');
  assert.ok(delays[0] >= 120, `waited ${delays[0]} ms`);
});

test('the control client calls commands and receives live numbers', async () => {
  const control = new ControlClient({ url: 'ws://engine/v1/control', token: 'a1', WebSocket: FakeSocket });
  const numbers = [];
  control.on('numbers', (n) => numbers.push(n.online));
  control.connect();
  await until(() => FakeSocket.all.length === 1, 'a socket');
  const ws = last();
  assert.deepEqual(ws.protocols, ['jsonrpc']);
  ws.serverAccept();
  const started = control.call('start_seckill', { product: 'tea', price: 100, stock: 5, duration_s: 60 });
  const refused = control.call('mute', {});
  const [call, bad] = ws.sent;
  assert.equal(call.method, 'start_seckill');
  ws.serverSend({ jsonrpc: '2.0', id: call.id, result: { sale: 's1' } });
  ws.serverSend({ jsonrpc: '2.0', id: bad.id, error: { code: -32602, message: 'user: required', data: { code: 'bad_field' } } });
  ws.serverSend({ jsonrpc: '2.0', method: 'live_numbers', params: { online: 12 } });
  assert.deepEqual(await started, { sale: 's1' });
  await assert.rejects(refused, (err) => err instanceof ControlError && err.code === 'bad_field' && err.rpcCode === -32602);
  assert.deepEqual(numbers, [12]);
  control.close();
});
