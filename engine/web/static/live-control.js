// @ts-check
/**
 * live-control.js: the control WebSocket (docs/control.md) for anchors' consoles: JSON-RPC 2.0
 * calls of the engine's commands, and the `live_numbers` notifications it pushes about once a
 * second. Reconnects with backoff; calls made while away wait for the connection.
 *
 * ```js
 * import { ControlClient } from './live-control.js';
 * const control = new ControlClient({ url: 'ws://127.0.0.1:8901/v1/control', token: anchorToken });
 * control.on('numbers', (n) => render(n.online, n.likes));
 * control.connect();
 * const sale = await control.call('start_seckill', { product: 'tea', price: 990, stock: 50,
 *                                                    duration_s: 120 });
 * ```
 * @module live-control
 */

/**
 * @typedef {object} LiveNumbers the `live_numbers` result (docs/control.md)
 * @property {string} room
 * @property {number} online
 * @property {number} peak
 * @property {number} likes
 * @property {number} danmaku_per_s
 * @property {number} danmaku_total
 * @property {Record<string, any>[]} sales running flash sales
 * @property {number} ts
 */
/**
 * @typedef {object} ControlEvents
 * @property {{state: 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed', attempt: number,
 *   code?: number, reason?: string, delayMs?: number}} state
 * @property {LiveNumbers} numbers a `live_numbers` push
 * @property {{method: string, params: any}} notification any notification
 * @property {{code: number, reason: string, willReconnect: boolean}} close
 */
/**
 * @typedef {object} ControlClientOptions
 * @property {string} url `ws://HOST:HTTP_PORT/v1/control`
 * @property {string | (() => string | Promise<string>)} token an anchor or admin JWT, or a
 *   function called before each connection
 * @property {string} [room] the room commands default to (default: the token's)
 * @property {boolean} [reconnect] default true
 * @property {number} [backoffBaseMs] default 300
 * @property {number} [backoffMaxMs] default 10000
 * @property {number} [callTimeoutMs] default 15000
 * @property {typeof WebSocket} [WebSocket]
 */

/** A refused call: `code` is the engine's error code (`bad_field`, `forbidden`, `sold_out`,
 * ...) or a client-side one (`disconnected`, `timeout`, `closed`); `rpcCode` JSON-RPC's. */
export class ControlError extends Error {
  /** @param {string} code @param {string} message @param {number} [rpcCode] */
  constructor(code, message, rpcCode) {
    super(`${code}: ${message}`);
    this.name = 'ControlError';
    this.code = code;
    this.rpcCode = rpcCode;
  }
}

/** Close codes that a retry cannot fix: bad token, wrong room, a viewer token (4012). */
const FINAL = new Set([4001, 4003, 4012, 1008]);

export class ControlClient {
  /** @param {ControlClientOptions} options */
  constructor(options) {
    this.options = { reconnect: true, backoffBaseMs: 300, backoffMaxMs: 10000,
      callTimeoutMs: 15000, ...options };
    /** @type {ControlEvents['state']['state']} */
    this.state = 'idle';
    this.attempt = 0;
    /** the last live numbers pushed @type {LiveNumbers | null} */
    this.numbers = null;
    /** @type {WebSocket | null} */
    this._ws = null;
    this._ids = 0;
    /** @type {Map<number, {request: string, sent: boolean, resolve: (r: any) => void,
     *   reject: (e: ControlError) => void, timer: ReturnType<typeof setTimeout>}>} */
    this._pending = new Map();
    /** @type {{[K in keyof ControlEvents]?: Set<(payload: ControlEvents[K]) => void>}} */
    this._handlers = {};
    this._stopped = true;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._retryTimer = null;
  }

  /**
   * @template {keyof ControlEvents} K
   * @param {K} event
   * @param {(payload: ControlEvents[K]) => void} handler
   * @returns {() => void} stops listening
   */
  on(event, handler) {
    const set = /** @type {Set<(payload: ControlEvents[K]) => void>} */ (
      this._handlers[event] ?? (this._handlers[event] = /** @type {any} */ (new Set())));
    set.add(handler);
    return () => set.delete(handler);
  }

  /**
   * @template {keyof ControlEvents} K
   * @param {K} event
   * @param {ControlEvents[K]} payload
   */
  _emit(event, payload) {
    for (const handler of [...(this._handlers[event] ?? [])]) {
      try {
        handler(payload);
      } catch (err) {
        setTimeout(() => { throw err; }, 0);
      }
    }
  }

  connect() {
    if (!this._stopped) return;
    this._stopped = false;
    this._open();
  }

  close() {
    this._stopped = true;
    if (this._retryTimer !== null) clearTimeout(this._retryTimer);
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = null;
      ws.close(1000, 'bye');
    }
    this._fail(() => true, 'closed', 'the control client was closed');
    this._setState('closed');
  }

  /**
   * Call a command (docs/control.md: its name and parameters; room commands default to the
   * connection's room).
   * @param {string} method
   * @param {Record<string, any>} [params]
   * @returns {Promise<any>} the result; rejects with a ControlError
   */
  call(method, params = {}) {
    if (this._stopped && this.state !== 'idle') {
      return Promise.reject(new ControlError('closed', 'the control client is closed'));
    }
    const id = ++this._ids;
    const request = JSON.stringify({ jsonrpc: '2.0', id, method, params });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new ControlError('timeout', `no answer to ${method} in time`));
      }, this.options.callTimeoutMs);
      const pending = { request, sent: false, resolve, reject, timer };
      this._pending.set(id, pending);
      this._send(pending);
    });
  }

  /** @param {{request: string, sent: boolean}} pending */
  _send(pending) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) return;
    pending.sent = true;
    ws.send(pending.request);
  }

  async _open() {
    this._setState(this.attempt ? 'reconnecting' : 'connecting');
    let token;
    try {
      const given = this.options.token;
      token = typeof given === 'function' ? await given() : given;
    } catch (err) {
      this._retry(4000, `client: could not get a token: ${String(err)}`);
      return;
    }
    if (this._stopped) return;
    const url = new URL(this.options.url, globalThis.location?.href);
    url.searchParams.set('token', token);
    if (this.options.room) url.searchParams.set('room', this.options.room);
    const WS = this.options.WebSocket ?? globalThis.WebSocket;
    const ws = new WS(url.toString(), ['jsonrpc']);
    this._ws = ws;
    ws.onopen = () => {
      if (this._ws !== ws) return;
      this.attempt = 0;
      this._setState('open');
      for (const p of this._pending.values()) if (!p.sent) this._send(p);
    };
    ws.onmessage = (event) => {
      if (this._ws === ws) this._receive(String(event.data));
    };
    ws.onclose = (event) => {
      if (this._ws !== ws) return;
      this._ws = null;
      // a command sent but unanswered may or may not have run: say so rather than resend
      this._fail((p) => p.sent, 'disconnected', 'the connection dropped before the answer');
      this._retry(event.code, event.reason);
    };
  }

  /** @param {string} data */
  _receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    for (const one of Array.isArray(message) ? message : [message]) {
      if (one.method) {
        if (one.method === 'live_numbers') {
          this.numbers = one.params;
          this._emit('numbers', one.params);
        }
        this._emit('notification', { method: one.method, params: one.params });
        continue;
      }
      const pending = this._pending.get(one.id);
      if (!pending) continue;
      this._pending.delete(one.id);
      clearTimeout(pending.timer);
      if (one.error) {
        const code = one.error.data?.code ?? 'internal';
        pending.reject(new ControlError(code, one.error.message, one.error.code));
      } else {
        pending.resolve(one.result);
      }
    }
  }

  /** @param {number} code @param {string} reason */
  _retry(code, reason) {
    const final = FINAL.has(code) || (code === 4002 && typeof this.options.token !== 'function');
    if (this._stopped || !this.options.reconnect || final) {
      this._emit('close', { code, reason, willReconnect: false });
      this._stopped = true;
      this._fail(() => true, 'closed', `the control socket closed: ${reason || code}`);
      this._setState('closed', { code, reason });
      return;
    }
    this.attempt += 1;
    const { backoffBaseMs, backoffMaxMs } = this.options;
    const exp = Math.min(backoffMaxMs, backoffBaseMs * 2 ** Math.min(this.attempt - 1, 16));
    const delayMs = exp / 2 + Math.random() * exp / 2;
    this._emit('close', { code, reason, willReconnect: true });
    this._setState('reconnecting', { code, reason, delayMs });
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      this._open();
    }, delayMs);
  }

  /**
   * @param {(p: {sent: boolean}) => boolean} which
   * @param {string} code
   * @param {string} message
   */
  _fail(which, code, message) {
    for (const [id, p] of [...this._pending]) {
      if (!which(p)) continue;
      this._pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new ControlError(code, message));
    }
  }

  /**
   * @param {ControlEvents['state']['state']} state
   * @param {{code?: number, reason?: string, delayMs?: number}} [extra]
   */
  _setState(state, extra = {}) {
    this.state = state;
    this._emit('state', { state, attempt: this.attempt, ...extra });
  }
}
