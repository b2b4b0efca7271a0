// @ts-check
/**
 * live-client.js: the engine's viewer protocol (docs/protocol.md) for browsers and any runtime
 * with a WHATWG WebSocket. An ES module with no dependencies but msgpack.js beside it.
 *
 * ```js
 * import { LiveClient } from './live-client.js';
 * const client = new LiveClient({ url: 'ws://127.0.0.1:8900/v1/ws', token: () => fetchToken() });
 * client.on('chat', (msgs) => msgs.forEach(show));
 * client.on('likes', ({ total }) => render(total));
 * client.connect();
 * await client.sendDanmaku('hello 👋');
 * ```
 *
 * What it does for you: picks the codec (JSON or msgpack), answers nothing itself (browsers
 * answer the server's WebSocket pings) but sends app-level `ping`s to measure the round trip,
 * estimate the server clock and notice a dead connection; reconnects with exponential backoff
 * and jitter, resuming from the last position (`since`/`epoch`), so missed messages are replayed;
 * handles `resync` and `status`; keeps the room's state (likes, online, pinned, phrases, cards,
 * running sales with their live stock); shows each popup once; coalesces likes; matches
 * answers to requests by `rid`; retries unanswered grabs with the same `rid` after a reconnect
 * (a grab's rid is its idempotency key, so a retry can never buy twice).
 *
 * See docs/client.md.
 * @module live-client
 */

import { decode as msgpackDecode, encode as msgpackEncode } from './msgpack.js';

// ------------------------------------------------------------------------------------------
// Types of what the server sends (docs/protocol.md)

/**
 * @typedef {object} ChatMessage
 * @property {string} id
 * @property {number} [seq] the room position of this message
 * @property {string} user
 * @property {string} name display name
 * @property {string} text
 * @property {number} ts ms since the epoch (server clock)
 * @property {string} [role] `anchor` or `admin` (absent for viewers)
 * @property {{user: string}} [reply_to] an anchor's "@user" reply
 */
/**
 * @typedef {object} Popup
 * @property {string} id show a popup once per id
 * @property {string} kind `product_card`, `seckill`, `sold_out`, `seckill_ended`, `room`,
 *   `stream`, `coupon`, `lottery`, ... (push_popup may send any kind)
 * @property {Record<string, any>} data
 * @property {number} ts when it was pushed (server clock, ms)
 * @property {number} [ttl] seconds later joiners still see it
 */
/** @typedef {{id: string, text: string, by: string, ts: number}} PinnedMessage */
/** @typedef {{id: number, text: string}} Phrase */
/** @typedef {{id: string, name: string, price: number, image: string, stock: number}} Card */
/** @typedef {{mounted: Card[], pinned: string | null}} Cards */
/**
 * @typedef {object} Sale a flash sale with its live stock
 * @property {string} sale
 * @property {string} product
 * @property {string} name
 * @property {string} image
 * @property {number} list_price minor units
 * @property {number} price minor units
 * @property {number} stock
 * @property {number} left
 * @property {number} [ver] stock version: a higher one is newer
 * @property {number} limit most units per user
 * @property {number} start_at ms (server clock)
 * @property {number} end_at ms (server clock)
 * @property {boolean} [ended] set by the client when a `seckill_ended` popup came
 */
/**
 * @typedef {object} Coupon a dropped coupon batch with its live count (docs/protocol.md)
 * @property {string} batch
 * @property {string} [title]
 * @property {'fixed' | 'threshold' | 'no_threshold' | 'percent'} kind
 * @property {number} value minor units off (percent: 1..99)
 * @property {number} [threshold] minimum order, minor units
 * @property {string} [product] a fixed coupon's product
 * @property {number} quantity
 * @property {number} left
 * @property {number} [ver] count version: a higher one is newer
 * @property {number} [valid_until] ms
 * @property {number} claim_until ms: claims close
 * @property {boolean} [ended] set by the client: claims closed (`coupon_ended`)
 */
/** @typedef {{user: string, rank: number, name?: string}} LotteryWinner */
/**
 * @typedef {object} Lottery a lottery (docs/protocol.md)
 * @property {string} lottery
 * @property {string} prize
 * @property {number} winners how many winners will be drawn
 * @property {'keyword' | 'follow' | 'both'} entry how to enter: send `keyword` as a danmaku,
 *   follow the anchor, or either
 * @property {string} [keyword]
 * @property {number} [draw_at] ms, when the draw is scheduled
 * @property {string} commitment SHA-256 of the draw's seed, public before the draw
 * @property {number} entrants
 * @property {number} [ver] entrant count version
 * @property {LotteryWinner[]} [drawn] set by the client once drawn: the winners, in rank order
 * @property {Record<string, any>} [draw] the `lottery_winners` popup's data (seed, digest, ...:
 *   what anyone needs to verify the draw)
 * @property {boolean} [cancelled]
 */
/**
 * @typedef {object} Snapshot
 * @property {number} online
 * @property {number} likes
 * @property {PinnedMessage | null} pinned
 * @property {Popup | null} popup
 * @property {Phrase[]} phrases
 * @property {Cards} cards
 * @property {Sale[]} sales
 * @property {Coupon[]} [coupons] coupon batches open for claims
 * @property {Lottery[]} [lotteries] lotteries not drawn yet
 */
/**
 * @typedef {object} Welcome
 * @property {'welcome'} type
 * @property {string} room
 * @property {string} user
 * @property {string} role
 * @property {string} conn
 * @property {string} node
 * @property {string} epoch
 * @property {number} seq
 * @property {'fresh' | 'resumed' | 'resync'} recovery
 * @property {string} [reason] for a resync: `too_old`, `epoch_changed`, `ahead`
 * @property {number} heartbeat seconds
 * @property {{max_message_bytes: number, max_text_chars: number, max_likes: number}} limits
 * @property {Snapshot} snapshot
 */
/**
 * @typedef {object} Result the answer to a request (its `rid`)
 * @property {'result'} type
 * @property {string | number} rid
 * @property {boolean} ok
 * @property {string} [code] why not, when `ok` is false (e.g. `sold_out`)
 * @property {Record<string, any>} [data]
 */
/** @typedef {{sale: string, left: number, stock: number, ver: number}} StockUpdate */
/**
 * @typedef {'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'} ConnectionState
 * `reconnecting`: waiting to try again, or trying; `closed`: stopped for good (close(), or a
 * refusal that retrying cannot fix: bad token, banned, wrong room).
 */
/**
 * @typedef {object} StateChange
 * @property {ConnectionState} state
 * @property {number} attempt reconnect attempts since the last stable connection
 * @property {number} [delayMs] when reconnecting: the wait before the next try
 * @property {number} [code] the close code that caused it
 * @property {string} [reason] the close reason (`"<error code>: <detail>"` from the engine)
 */
/**
 * @typedef {object} CloseInfo
 * @property {number} code WebSocket close code (1006: the connection was lost; 4000: this
 *   client gave up on a silent connection)
 * @property {string} reason
 * @property {string | null} error the engine's error code, from the reason (`bad_token`, ...)
 * @property {boolean} willReconnect
 * @property {number} [delayMs]
 */

/**
 * The events and what their handlers get.
 * @typedef {object} LiveEvents
 * @property {StateChange} state the connection state changed
 * @property {Welcome} welcome joined (or rejoined: see `recovery`)
 * @property {{snapshot: Snapshot, recovery: string, reason?: string}} snapshot the room state was
 *   (re)set from a snapshot: a fresh join, a resync welcome or a `resync` frame. Re-render all.
 * @property {{epoch: string, seq: number, reason: string, snapshot: Snapshot}} resync the room's
 *   history could not be followed; messages may be missing before this point
 * @property {{degraded: boolean, reason?: string}} status the node lost or regained Redis
 * @property {ChatMessage[]} chat a batch of chat messages, in order
 * @property {{total: number}} likes the room's like total
 * @property {{count: number}} online viewers online in the room
 * @property {Popup} popup a popup not seen before (each id once)
 * @property {PinnedMessage | null} pinned
 * @property {Phrase[]} phrases the room's quick phrases
 * @property {Cards} cards the product cards changed
 * @property {Sale} sale a flash sale started, or its stock or state changed
 * @property {StockUpdate} stock a newer stock figure for a sale
 * @property {Coupon} coupon a coupon batch was dropped, or its count or state changed
 * @property {Lottery} lottery a lottery started, its entrants changed, it was drawn or cancelled
 * @property {Result} result an answer to one of this client's requests
 * @property {LiveError} error an error frame (also rejects the request it answers)
 * @property {{rttMs: number, offsetMs: number}} rtt a ping's round trip and the clock offset
 * @property {CloseInfo} close the socket closed (see `willReconnect`)
 * @property {Record<string, any>} frame every decoded frame, before it is handled
 */

/**
 * @typedef {object} LiveClientOptions
 * @property {string} url the viewer WebSocket URL, e.g. `ws://host:8900/v1/ws`
 * @property {string | (() => string | Promise<string>)} token the JWT, or a function called
 *   before each connection (return a fresh token: then an expired one is replaced by itself)
 * @property {'json' | 'msgpack'} [codec] default `json`
 * @property {string} [room] sent as `room=`; the engine checks it equals the token's room
 * @property {boolean} [reconnect] default true
 * @property {number} [backoffBaseMs] first reconnect delay (default 300), doubled each try
 * @property {number} [backoffMaxMs] longest reconnect delay (default 10000)
 * @property {number} [stableAfterMs] a connection up this long resets the backoff (default 10000)
 * @property {number} [pingIntervalMs] app-level ping period (default 10000)
 * @property {number} [deadAfterMs] nothing received for this long after a ping: the
 *   connection is dropped and a new one made (default 25000)
 * @property {number} [welcomeTimeoutMs] default 15000
 * @property {number} [requestTimeoutMs] default 15000
 * @property {number} [likeFlushMs] likes are summed and sent at most this often (default 200)
 * @property {number} [maxQueued] requests waiting for a connection (default 100)
 * @property {typeof WebSocket} [WebSocket] the WebSocket class (default the global one)
 */

/** An error frame, or a request that failed on this side (code `disconnected`, `timeout`,
 * `offline`, `closed`, `too_large`, `bad_field`). */
export class LiveError extends Error {
  /**
   * @param {string} code the engine's error code (docs/protocol.md) or a client-side one
   * @param {string} message
   * @param {{rid?: string | number, retryAfterMs?: number}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(`${code}: ${message}`);
    this.name = 'LiveError';
    this.code = code;
    this.rid = extra.rid;
    /** for `rate_limited`: when the same request could pass (-1: never at its size) */
    this.retryAfterMs = extra.retryAfterMs;
  }
}

/** Close codes after which reconnecting cannot help (the token or the user is refused). */
export const FINAL_CLOSE_CODES = Object.freeze({
  1000: 'bye', 4001: 'bad_token', 4002: 'token_expired', 4003: 'wrong_room', 4013: 'banned',
});

/**
 * The phase of a flash sale at `now` (server clock, see `LiveClient.serverNow()`).
 * @param {Sale} sale
 * @param {number} now
 * @returns {{phase: 'upcoming' | 'open' | 'sold_out' | 'ended', msLeft: number}} `msLeft`:
 *   until the start when upcoming, until the end when open
 */
export function salePhase(sale, now) {
  if (sale.ended || now >= sale.end_at) return { phase: 'ended', msLeft: 0 };
  if (now < sale.start_at) return { phase: 'upcoming', msLeft: sale.start_at - now };
  if (sale.left <= 0) return { phase: 'sold_out', msLeft: sale.end_at - now };
  return { phase: 'open', msLeft: sale.end_at - now };
}

const SEEN_POPUPS_KEPT = 512;

/**
 * @typedef {object} Pending
 * @property {Record<string, any>} message
 * @property {boolean} retry resend after a reconnect if unanswered (idempotent requests)
 * @property {boolean} sent
 * @property {(frame: any) => void} resolve
 * @property {(error: LiveError) => void} reject
 * @property {ReturnType<typeof setTimeout>} timer
 * @property {number} sentAt
 */

export class LiveClient {
  /** @param {LiveClientOptions} options */
  constructor(options) {
    if (!options || !options.url) throw new TypeError('LiveClient: `url` is required');
    if (!options.token) throw new TypeError('LiveClient: `token` is required');
    this.options = {
      codec: /** @type {'json' | 'msgpack'} */ ('json'), reconnect: true, backoffBaseMs: 300,
      backoffMaxMs: 10000, stableAfterMs: 10000, pingIntervalMs: 10000, deadAfterMs: 25000,
      welcomeTimeoutMs: 15000, requestTimeoutMs: 15000, likeFlushMs: 200, maxQueued: 100,
      ...options,
    };
    /** @type {ConnectionState} */
    this.state = 'idle';
    /** the last welcome (its `recovery` says how the last (re)connection went) @type {Welcome | null} */
    this.welcome = null;
    /** the room epoch and the last position reached: sent back on reconnect */
    this.epoch = '';
    this.seq = 0;
    /** reconnect attempts since the last stable connection */
    this.attempt = 0;
    /** welcomes received, by recovery (`fresh`, `resumed`, `resync`) @type {Record<string, number>} */
    this.recoveries = {};
    /** estimated server clock minus local clock, ms (from pongs) */
    this.clockOffsetMs = 0;
    /** the last measured round trip, ms (null before the first pong) @type {number | null} */
    this.rttMs = null;
    /** The room as this client knows it. */
    this.room = {
      online: 0,
      likes: 0,
      /** @type {PinnedMessage | null} */ pinned: null,
      /** @type {Popup | null} */ popup: null,
      /** @type {Phrase[]} */ phrases: [],
      /** @type {Cards} */ cards: { mounted: [], pinned: null },
      /** @type {Map<string, Sale>} */ sales: new Map(),
      /** @type {Map<string, Coupon>} */ coupons: new Map(),
      /** @type {Map<string, Lottery>} */ lotteries: new Map(),
      degraded: false,
    };
    /** @type {{[K in keyof LiveEvents]?: Set<(payload: LiveEvents[K]) => void>}} */
    this._handlers = {};
    /** @type {WebSocket | null} */
    this._ws = null;
    /** @type {Map<string | number, Pending>} */
    this._pending = new Map();
    this._ridPrefix = randomHex(8);
    this._ridCount = 0;
    /** @type {Set<string>} */
    this._seenPopups = new Set();
    this._likeBuffer = 0;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._likeTimer = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._retryTimer = null;
    /** @type {ReturnType<typeof setInterval> | null} */
    this._pingTimer = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._welcomeTimer = null;
    this._lastFrameAt = 0;
    /** when the unanswered ping went out (0: none) */
    this._pingSince = 0;
    this._openedAt = 0;
    this._stopped = true;
    /** @type {{rtt: number, offset: number}[]} */
    this._clockSamples = [];
    this._onOnline = () => {
      if (this.state === 'reconnecting' && this._retryTimer !== null) this._retryNow();
    };
  }

  // ----------------------------------------------------------------------------------------
  // events

  /**
   * Listen to an event; returns a function that stops listening.
   * @template {keyof LiveEvents} K
   * @param {K} event
   * @param {(payload: LiveEvents[K]) => void} handler
   * @returns {() => void}
   */
  on(event, handler) {
    const set = /** @type {Set<(payload: LiveEvents[K]) => void>} */ (
      this._handlers[event] ?? (this._handlers[event] = /** @type {any} */ (new Set())));
    set.add(handler);
    return () => this.off(event, handler);
  }

  /**
   * @template {keyof LiveEvents} K
   * @param {K} event
   * @param {(payload: LiveEvents[K]) => void} handler
   */
  off(event, handler) {
    this._handlers[event]?.delete(handler);
  }

  /**
   * @template {keyof LiveEvents} K
   * @param {K} event
   * @param {LiveEvents[K]} payload
   */
  _emit(event, payload) {
    const set = this._handlers[event];
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(payload);
      } catch (err) {
        // a handler's bug must not break the protocol state: report it asynchronously
        setTimeout(() => { throw err; }, 0);
      }
    }
  }

  // ----------------------------------------------------------------------------------------
  // connection

  /** Connect (and keep reconnecting until `close()`). */
  connect() {
    if (!this._stopped) return;
    this._stopped = false;
    this.attempt = 0;
    globalThis.addEventListener?.('online', this._onOnline);
    this._open();
  }

  /** Leave the room and stop: sends `leave`, closes the socket, rejects what is pending. */
  close() {
    if (this._stopped) return;
    this._stopped = true;
    globalThis.removeEventListener?.('online', this._onOnline);
    this._flushLikes();
    const ws = this._ws;
    if (ws && ws.readyState === 1) {
      try { ws.send(this._encode({ type: 'leave' })); } catch { /* closing anyway */ }
    }
    this._teardown(1000, 'bye: client closed');
    this._failPending((p) => true, 'closed', 'the client was closed');
    this._setState('closed', { code: 1000, reason: 'client closed' });
  }

  /** The server's clock now (ms since the epoch), as estimated from pongs. */
  serverNow() {
    return Date.now() + this.clockOffsetMs;
  }

  /** Drop the current connection as if the network failed (it reconnects and resumes). For
   * tests and "retry now" buttons. */
  reconnectNow() {
    if (this._stopped) return;
    if (this._retryTimer !== null) this._retryNow();
    else this._lost(4000, 'client: reconnect requested');
  }

  async _open() {
    const reconnecting = this.attempt > 0;
    this._setState(reconnecting ? 'reconnecting' : 'connecting');
    let token;
    try {
      const given = this.options.token;
      token = typeof given === 'function' ? await given() : given;
    } catch (err) {
      this._scheduleRetry(4000, `client: could not get a token: ${String(err)}`);
      return;
    }
    if (this._stopped) return;
    const url = new URL(this.options.url, globalThis.location?.href);
    url.searchParams.set('token', token);
    if (this.options.room) url.searchParams.set('room', this.options.room);
    if (this.epoch) {
      url.searchParams.set('since', String(this.seq));
      url.searchParams.set('epoch', this.epoch);
    }
    const WS = this.options.WebSocket ?? globalThis.WebSocket;
    /** @type {WebSocket} */
    let ws;
    try {
      ws = new WS(url.toString(), [this.options.codec]);
    } catch (err) {
      this._scheduleRetry(4000, `client: ${String(err)}`);
      return;
    }
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    this._lastFrameAt = Date.now();
    ws.onmessage = (event) => {
      if (this._ws === ws) this._receive(event.data);
    };
    ws.onclose = (event) => {
      if (this._ws === ws) this._lost(event.code, event.reason);
    };
    ws.onerror = () => { /* onclose follows with the code */ };
    this._welcomeTimer = setTimeout(() => {
      if (this._ws === ws) this._lost(4000, 'client: no welcome in time');
    }, this.options.welcomeTimeoutMs);
  }

  /** @param {number} code @param {string} reason */
  _lost(code, reason) {
    const wasOpen = this.state === 'open';
    const lived = this._openedAt ? Date.now() - this._openedAt : 0;
    this._teardown(4000, 'client: dropping');
    // a sent request without an idempotency key may or may not have been done: say so
    this._failPending((p) => p.sent && !p.retry, 'disconnected',
      'the connection dropped before the answer: it may or may not have been done');
    for (const p of this._pending.values()) p.sent = false;
    if (wasOpen && lived >= this.options.stableAfterMs) this.attempt = 0;
    this._scheduleRetry(code, reason);
  }

  /** @param {number} code @param {string} reason */
  _scheduleRetry(code, reason) {
    const error = errorCode(reason);
    const refreshable = typeof this.options.token === 'function';
    const final = code in FINAL_CLOSE_CODES && !(refreshable && code === 4002);
    if (this._stopped || !this.options.reconnect || final) {
      this._emit('close', { code, reason, error, willReconnect: false });
      this._stopped = true;
      globalThis.removeEventListener?.('online', this._onOnline);
      this._failPending(() => true, 'closed', `the connection closed: ${reason || code}`);
      this._setState('closed', { code, reason });
      return;
    }
    this.attempt += 1;
    const delayMs = this._delay(code, reason);
    this._emit('close', { code, reason, error, willReconnect: true, delayMs });
    this._setState('reconnecting', { code, reason, delayMs });
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      this._open();
    }, delayMs);
  }

  /** @param {number} code @param {string} reason */
  _delay(code, reason) {
    const { backoffBaseMs, backoffMaxMs } = this.options;
    if (code === 1001) return Math.random() * 1000; // the node drains: spread the herd
    const retry = /retry after (\d+) ms/.exec(reason || '');
    if (retry) return Number(retry[1]) + Math.random() * 250;
    const exp = Math.min(backoffMaxMs, backoffBaseMs * 2 ** Math.min(this.attempt - 1, 16));
    const floor = code === 4008 || code === 4011 ? backoffMaxMs : 0; // abuse, rehearsal: slowly
    return Math.max(floor, exp / 2 + Math.random() * exp / 2);
  }

  _retryNow() {
    if (this._retryTimer !== null) clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._open();
  }

  /** @param {number} code @param {string} reason */
  _teardown(code, reason) {
    for (const timer of [this._welcomeTimer, this._retryTimer]) {
      if (timer !== null) clearTimeout(timer);
    }
    if (this._pingTimer !== null) clearInterval(this._pingTimer);
    this._welcomeTimer = this._retryTimer = this._pingTimer = null;
    this._openedAt = 0;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(code, reason); } catch { /* already closed */ }
    }
  }

  /**
   * @param {ConnectionState} state
   * @param {{code?: number, reason?: string, delayMs?: number}} [extra]
   */
  _setState(state, extra = {}) {
    this.state = state;
    this._emit('state', { state, attempt: this.attempt, ...extra });
  }

  // ----------------------------------------------------------------------------------------
  // frames in

  /** @param {unknown} data */
  _receive(data) {
    this._lastFrameAt = Date.now();
    let frame;
    try {
      frame = typeof data === 'string'
        ? JSON.parse(data)
        : msgpackDecode(/** @type {ArrayBuffer} */ (data));
    } catch (err) {
      this._lost(4000, `client: undecodable frame: ${String(err)}`);
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    this._emit('frame', frame);
    this._handle(frame);
    // a frame's seq: with it, everything up to this position has arrived (docs/protocol.md)
    if (typeof frame.seq === 'number' && frame.type !== 'welcome' && frame.type !== 'resync') {
      this.seq = frame.seq;
    }
  }

  /** @param {Record<string, any>} frame */
  _handle(frame) {
    const room = this.room;
    switch (frame.type) {
      case 'welcome': return this._welcomed(/** @type {Welcome} */ (frame));
      case 'resync': {
        this.epoch = frame.epoch;
        this.seq = frame.seq;
        this._emit('resync', /** @type {any} */ (frame));
        this._applySnapshot(frame.snapshot, 'resync', frame.reason);
        return;
      }
      case 'status':
        room.degraded = !!frame.degraded;
        return this._emit('status', { degraded: room.degraded, reason: frame.reason });
      case 'chat': return this._emit('chat', frame.msgs ?? []);
      case 'likes':
        room.likes = frame.total;
        return this._emit('likes', { total: frame.total });
      case 'online':
        room.online = frame.count;
        return this._emit('online', { count: frame.count });
      case 'popup': return this._popup(frame.popup);
      case 'pinned':
        room.pinned = frame.msg ?? null;
        return this._emit('pinned', room.pinned);
      case 'phrases':
        room.phrases = frame.phrases ?? [];
        return this._emit('phrases', room.phrases);
      case 'stock': return this._stock(/** @type {StockUpdate} */ (frame));
      case 'coupon_left': return this._count('coupon', frame.batch, frame.ver, (c) => {
        c.left = frame.left;
        c.quantity = frame.quantity;
      });
      case 'lottery_entrants': return this._count('lottery', frame.lottery, frame.ver, (l) => {
        l.entrants = frame.count;
      });
      case 'pong': return this._pong(frame);
      case 'result': return this._answer(frame, null);
      case 'error': {
        const error = new LiveError(frame.code, frame.message,
          { rid: frame.rid, retryAfterMs: frame.retry_after_ms });
        this._emit('error', error);
        return this._answer(frame, error);
      }
      default: return undefined; // a newer server's type: see the `frame` event
    }
  }

  /** @param {Welcome} welcome */
  _welcomed(welcome) {
    if (this._welcomeTimer !== null) clearTimeout(this._welcomeTimer);
    this._welcomeTimer = null;
    this.welcome = welcome;
    this.epoch = welcome.epoch;
    this.seq = welcome.seq;
    this.recoveries[welcome.recovery] = (this.recoveries[welcome.recovery] ?? 0) + 1;
    this._openedAt = Date.now();
    this._pingSince = 0;
    this._setState('open');
    this._emit('welcome', welcome);
    if (welcome.recovery !== 'resumed') {
      this._applySnapshot(welcome.snapshot, welcome.recovery, welcome.reason);
    }
    // requests made while away (and unanswered grabs, with their rid) go now
    for (const p of this._pending.values()) {
      if (!p.sent) this._transmit(p);
    }
    this._flushLikes();
    const every = this.options.pingIntervalMs;
    this._pingTimer = setInterval(() => this._heartbeat(), every);
    this.ping().catch(() => { /* measured next time */ });
  }

  _heartbeat() {
    // Silence is counted from an unanswered ping, not from the last frame: browsers fire the
    // timers of background tabs as rarely as once a minute, and a quiet room sends nothing.
    const now = Date.now();
    if (this._pingSince && this._lastFrameAt < this._pingSince) {
      if (now - this._pingSince > this.options.deadAfterMs) {
        this._lost(4000, 'client: connection silent, presumed dead');
      }
      return; // still waiting for an answer: no pile of pings
    }
    this._pingSince = now;
    this.ping().catch(() => { /* a lost pong shows as silence */ });
  }

  /**
   * @param {Snapshot} snapshot
   * @param {string} recovery
   * @param {string} [reason]
   */
  _applySnapshot(snapshot, recovery, reason) {
    const room = this.room;
    room.online = snapshot.online;
    room.likes = snapshot.likes;
    room.pinned = snapshot.pinned ?? null;
    room.popup = snapshot.popup ?? null;
    room.phrases = snapshot.phrases ?? [];
    room.cards = snapshot.cards ?? { mounted: [], pinned: null };
    room.sales = new Map((snapshot.sales ?? []).map((s) => [s.sale, { ...s }]));
    room.coupons = new Map((snapshot.coupons ?? []).map((c) => [c.batch, { ...c }]));
    room.lotteries = new Map((snapshot.lotteries ?? []).map((l) => [l.lottery, { ...l }]));
    this._emit('snapshot', { snapshot, recovery, reason });
    if (room.popup) this._popup(room.popup);
  }

  /** @param {Popup} popup */
  _popup(popup) {
    if (!popup || this._seenPopups.has(popup.id)) return;
    this._seenPopups.add(popup.id);
    if (this._seenPopups.size > SEEN_POPUPS_KEPT) {
      this._seenPopups.delete(this._seenPopups.values().next().value ?? '');
    }
    const room = this.room;
    const data = popup.data ?? {};
    room.popup = popup;
    if (popup.kind === 'product_card' && data.cards) {
      room.cards = data.cards;
      this._emit('cards', room.cards);
    } else if (popup.kind === 'seckill') {
      const known = room.sales.get(data.sale);
      // a stock figure seen before the popup (higher ver) wins
      const sale = known && (known.ver ?? -1) > (data.ver ?? -1)
        ? { ...(/** @type {Sale} */ (data)), left: known.left, stock: known.stock, ver: known.ver }
        : { .../** @type {Sale} */ (data) };
      room.sales.set(sale.sale, sale);
      this._emit('sale', sale);
    } else if (popup.kind === 'coupon') {
      const coupon = /** @type {Coupon} */ ({ ...data });
      const known = room.coupons.get(coupon.batch);
      if (known && (known.ver ?? -1) > (coupon.ver ?? -1)) coupon.left = known.left;
      room.coupons.set(coupon.batch, coupon);
      this._emit('coupon', coupon);
    } else if (popup.kind === 'coupon_all_claimed' || popup.kind === 'coupon_ended') {
      const coupon = room.coupons.get(data.batch);
      if (coupon) {
        if (popup.kind === 'coupon_all_claimed') coupon.left = 0;
        else coupon.ended = true;
        this._emit('coupon', coupon);
      }
    } else if (popup.kind === 'lottery') {
      const lottery = /** @type {Lottery} */ ({ ...data });
      const known = room.lotteries.get(lottery.lottery);
      if (known && (known.ver ?? -1) > (lottery.ver ?? -1)) lottery.entrants = known.entrants;
      room.lotteries.set(lottery.lottery, lottery);
      this._emit('lottery', lottery);
    } else if (popup.kind === 'lottery_winners' || popup.kind === 'lottery_cancelled') {
      const lottery = room.lotteries.get(data.lottery)
        ?? /** @type {Lottery} */ ({ lottery: data.lottery, prize: data.prize ?? '', winners: 0,
          entry: 'keyword', commitment: data.commitment ?? '', entrants: data.entrants ?? 0 });
      if (popup.kind === 'lottery_winners') {
        lottery.drawn = data.winners ?? [];
        lottery.draw = data;
        if (typeof data.entrants === 'number') lottery.entrants = data.entrants;
      } else {
        lottery.cancelled = true;
      }
      room.lotteries.set(lottery.lottery, lottery);
      this._emit('lottery', lottery);
    } else if (popup.kind === 'sold_out' || popup.kind === 'seckill_ended') {
      const sale = room.sales.get(data.sale);
      if (sale) {
        if (popup.kind === 'sold_out') sale.left = 0;
        else {
          sale.ended = true;
          if (typeof data.left === 'number') sale.left = data.left;
        }
        this._emit('sale', sale);
      }
    }
    this._emit('popup', popup);
  }

  /** @param {StockUpdate} update */
  _stock(update) {
    const sale = this.room.sales.get(update.sale);
    if (sale) {
      if ((sale.ver ?? -1) >= update.ver) return; // an older figure
      sale.left = update.left;
      sale.stock = update.stock;
      sale.ver = update.ver;
    }
    this._emit('stock', { sale: update.sale, left: update.left, stock: update.stock,
      ver: update.ver });
    if (sale) this._emit('sale', sale);
  }

  /**
   * A newer count for a coupon batch or a lottery (`coupon_left`, `lottery_entrants`).
   * @param {'coupon' | 'lottery'} kind
   * @param {string} id
   * @param {number} ver
   * @param {(item: any) => void} apply
   */
  _count(kind, id, ver, apply) {
    const items = kind === 'coupon' ? this.room.coupons : this.room.lotteries;
    const item = items.get(id);
    if (!item || (item.ver ?? -1) >= ver) return;
    item.ver = ver;
    apply(item);
    this._emit(kind, /** @type {any} */ (item));
  }

  /** @param {Record<string, any>} frame */
  _pong(frame) {
    const pending = this._pending.get(frame.rid);
    if (!pending) return;
    const now = Date.now();
    const rtt = now - pending.sentAt;
    const offset = frame.ts - (pending.sentAt + rtt / 2);
    this._clockSamples.push({ rtt, offset });
    if (this._clockSamples.length > 8) this._clockSamples.shift();
    const best = this._clockSamples.reduce((a, b) => (b.rtt < a.rtt ? b : a));
    this.clockOffsetMs = Math.round(best.offset);
    this.rttMs = rtt;
    this._emit('rtt', { rttMs: rtt, offsetMs: this.clockOffsetMs });
    this._answer(frame, null);
  }

  /**
   * @param {Record<string, any>} frame
   * @param {LiveError | null} error
   */
  _answer(frame, error) {
    if (frame.rid === undefined || frame.rid === null) return;
    const pending = this._pending.get(frame.rid);
    if (frame.type === 'result') this._emit('result', /** @type {Result} */ (frame));
    if (!pending) return;
    this._pending.delete(frame.rid);
    clearTimeout(pending.timer);
    if (error) pending.reject(error);
    else pending.resolve(frame);
  }

  // ----------------------------------------------------------------------------------------
  // frames out

  /** @param {Record<string, any>} message @returns {string | Uint8Array} */
  _encode(message) {
    return this._ws?.protocol === 'msgpack' || (!this._ws && this.options.codec === 'msgpack')
      ? msgpackEncode(message)
      : JSON.stringify(message);
  }

  /** @param {Pending} p */
  _transmit(p) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1 || this.state !== 'open') return;
    p.sent = true;
    p.sentAt = Date.now();
    ws.send(this._encode(p.message));
  }

  /**
   * @param {(p: Pending) => boolean} which
   * @param {string} code
   * @param {string} message
   */
  _failPending(which, code, message) {
    for (const [rid, p] of [...this._pending]) {
      if (!which(p)) continue;
      this._pending.delete(rid);
      clearTimeout(p.timer);
      p.reject(new LiveError(code, message, { rid }));
    }
  }

  /** A request id unique to this client (a grab's rid is its idempotency key). */
  nextRid() {
    this._ridCount += 1;
    return `${this._ridPrefix}-${this._ridCount}`;
  }

  /**
   * Send any client message and wait for its answer (`result`, or `pong` for a ping). While
   * disconnected, requests wait (up to `maxQueued`) and go once the client is back.
   * @param {string} type
   * @param {Record<string, any>} [fields]
   * @param {{rid?: string | number, retry?: boolean, timeoutMs?: number}} [opts] `retry`: the
   *   request is idempotent by its rid and may be sent again after a reconnect
   * @returns {Promise<Result>} rejects with a LiveError for an error frame or a failure here
   */
  request(type, fields = {}, opts = {}) {
    if (this._stopped && this.state !== 'idle') {
      return Promise.reject(new LiveError('closed', 'the client is closed'));
    }
    const unsent = [...this._pending.values()].filter((p) => !p.sent).length;
    if (this.state !== 'open' && unsent >= this.options.maxQueued) {
      return Promise.reject(new LiveError('offline', 'too many requests wait for a connection'));
    }
    const rid = opts.rid ?? this.nextRid();
    const message = { ...fields, type, rid };
    return new Promise((resolve, reject) => {
      /** @type {Pending} */
      const pending = {
        message, retry: !!opts.retry, sent: false, resolve, reject, sentAt: 0,
        timer: setTimeout(() => {
          this._pending.delete(rid);
          reject(new LiveError('timeout', `no answer to ${type} in time`, { rid }));
        }, opts.timeoutMs ?? this.options.requestTimeoutMs),
      };
      this._pending.set(rid, pending);
      this._transmit(pending);
    });
  }

  /**
   * Send a danmaku (chat message). Emoji welcome.
   * @param {string} text
   * @param {{replyTo?: string}} [opts] `replyTo`: a user id (anchors' "@user" reply)
   * @returns {Promise<{id: string, seq: number}>} the message id and its room position; the
   *   message itself arrives in a `chat` event like everyone else's
   */
  async sendDanmaku(text, opts = {}) {
    const clean = String(text).trim();
    const max = this.welcome?.limits.max_text_chars ?? 200;
    if (!clean) throw new LiveError('bad_field', 'text: must not be empty');
    if ([...clean].length > max) throw new LiveError('too_large', `longer than ${max} characters`);
    const fields = opts.replyTo ? { text: clean, reply_to: opts.replyTo } : { text: clean };
    const answer = await this.request('danmaku', fields);
    return /** @type {any} */ (answer.data);
  }

  /**
   * Send one of the room's quick phrases by its id (see `room.phrases`).
   * @param {number} id
   * @returns {Promise<{id: string, seq: number}>}
   */
  async sendPhrase(id) {
    const answer = await this.request('danmaku', { phrase: id });
    return /** @type {any} */ (answer.data);
  }

  /**
   * Like (tap the heart) `count` times. Likes are summed and sent at most every
   * `likeFlushMs`; the total comes back in `likes` events. `pendingLikes` are not sent yet.
   * @param {number} [count]
   */
  like(count = 1) {
    if (!(count > 0)) return;
    this._likeBuffer = Math.min(this._likeBuffer + Math.floor(count), 100000);
    this._scheduleLikes();
  }

  /** Likes taken but not sent yet (show `room.likes + pendingLikes` for an instant feel). */
  get pendingLikes() {
    return this._likeBuffer;
  }

  _flushLikes() {
    const ws = this._ws;
    if (this._likeBuffer <= 0 || !ws || ws.readyState !== 1 || this.state !== 'open') return;
    const max = this.welcome?.limits.max_likes ?? 100;
    const count = Math.min(this._likeBuffer, max);
    this._likeBuffer -= count;
    ws.send(this._encode({ type: 'like', count }));
    if (this._likeBuffer > 0) this._scheduleLikes();
  }

  _scheduleLikes() {
    if (this._likeTimer !== null) return;
    this._likeTimer = setTimeout(() => {
      this._likeTimer = null;
      this._flushLikes();
    }, this.options.likeFlushMs);
  }

  /**
   * Grab a flash sale. Safe to retry: the rid is the idempotency key, and a grab unanswered
   * when the connection dropped is sent again, with the same rid, after the reconnect.
   * @param {string} sale
   * @param {{qty?: number, rid?: string}} [opts]
   * @returns {Promise<Result>} `ok: true` with `data: {sale, hold, expires_at, qty}`, or
   *   `ok: false` with `code` (`sold_out`, `limit_reached`, `not_started`, `ended`, ...)
   */
  grab(sale, opts = {}) {
    const fields = { sale, qty: opts.qty ?? 1 };
    return this.request('grab', fields, { rid: opts.rid, retry: true });
  }

  /**
   * A click on a product card (counted for the statistics).
   * @param {string} product
   * @returns {Promise<Result>} `data: {product, clicks}`; `ok: false, code: unknown_product`
   */
  click(product) {
    return this.request('click', { product });
  }

  /**
   * Claim a coupon of a dropped batch. Safe to retry: the rid is the idempotency key, and a
   * claim unanswered when the connection dropped is sent again with it after the reconnect.
   * @param {string} batch
   * @param {{rid?: string}} [opts]
   * @returns {Promise<Result>} `ok: true` with `data: {batch, coupon, kind, value, ...}`, or
   *   `ok: false` with `code` (`all_claimed`, `already_claimed`, `unknown_batch`, `ended`, ...)
   */
  claimCoupon(batch, opts = {}) {
    return this.request('claim', { batch }, { rid: opts.rid, retry: true });
  }

  /**
   * Follow the room's anchor (idempotent); it also enters open lotteries that take follows.
   * @returns {Promise<Result>} `data: {new, lotteries}` (the lotteries the user is in now)
   */
  follow() {
    return this.request('follow', {}, { retry: true });
  }

  /**
   * Enter a lottery with a button (keyword lotteries also take their keyword as a danmaku).
   * @param {string} lottery
   * @returns {Promise<Result>} `data: {lottery, new}`, or `ok: false` with `code`
   *   (`follow_required`, `lottery_closed`, `unknown_lottery`)
   */
  enterLottery(lottery) {
    return this.request('lottery_enter', { lottery }, { retry: true });
  }

  /** Reserve the (scheduled) room: the host reminds the user before it starts.
   * @returns {Promise<Result>} */
  reserve() {
    return this.request('reserve');
  }

  /** @returns {Promise<Result>} */
  unreserve() {
    return this.request('unreserve');
  }

  /** Anchors: pin a message for everyone. @param {string} text @returns {Promise<Result>} */
  pin(text) {
    return this.request('pin', { text });
  }

  /** Anchors: remove the pinned message. @returns {Promise<Result>} */
  unpin() {
    return this.request('unpin');
  }

  /**
   * Measure the round trip (also refreshes the server clock estimate).
   * @returns {Promise<number>} the round trip in ms
   */
  async ping() {
    const sentAt = Date.now();
    await this.request('ping', {}, { timeoutMs: this.options.deadAfterMs });
    return this.rttMs ?? Date.now() - sentAt;
  }
}

/** @param {string} reason @returns {string | null} the engine's error code in a close reason */
function errorCode(reason) {
  const match = /^([a-z_]+):/.exec(reason || '');
  return match ? match[1] : null;
}

/** @param {number} bytes */
function randomHex(bytes) {
  const buf = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(buf);
  return Array.from(buf, (b) => b.toString(16).padStart(2, '0')).join('');
}
