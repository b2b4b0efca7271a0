// Helpers shared by the demo viewer page and the anchor console (not part of the client API).

/** Page settings from `?query` and `#hash` (the hash is for tokens: it never reaches a server). */
export function pageParams() {
  const params = new URLSearchParams(location.search);
  const hash = new URLSearchParams(location.hash.replace(/^#/, ''));
  for (const [key, value] of hash) params.set(key, value);
  return params;
}

/**
 * A token source for the client: `#token=` from the page URL, else the dev-mode endpoint
 * `/demo/token` (a fresh token on every call, so an expired one is replaced on reconnect).
 * Resolves the viewer and control URLs too (`?ws=` / `?control=` override them).
 */
export async function demoSession(params, role, defaults = {}) {
  const room = params.get('room') || defaults.room || 'demo';
  const user = params.get('user') || defaults.user || `guest-${Math.random().toString(16).slice(2, 6)}`;
  const name = params.get('name') || defaults.name || user;
  const given = params.get('token');
  const session = {
    room, user, name, role,
    wsUrl: params.get('ws') || '',
    controlUrl: params.get('control') || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/control`,
    dev: !given,
    /** @returns {Promise<string>} */
    token: async () => given,
  };
  if (given) {
    if (!session.wsUrl) throw new Error('with #token=, give the viewer URL too: #ws=ws://host:port/v1/ws');
    return session;
  }
  const query = new URLSearchParams({ room, user, name, role, device: deviceId() });
  const fetchToken = async () => {
    const response = await fetch(`/demo/token?${query}`, { cache: 'no-store' });
    if (response.status === 404) {
      throw new Error('this engine is not in dev mode: open the page with #token=<JWT>&ws=<viewer URL>');
    }
    const body = await response.json();
    if (!response.ok) throw new Error(`${body.error?.code}: ${body.error?.message}`);
    return body;
  };
  const first = await fetchToken();
  session.wsUrl = session.wsUrl || first.ws_url;
  session.controlUrl = params.get('control') || first.control_url;
  let cached = first.token;
  session.token = async () => {
    if (cached) {
      const token = cached;
      cached = null;
      return token;
    }
    return (await fetchToken()).token;
  };
  return session;
}

/** A per-browser device id (the engine's anti-fraud counts accounts per device). */
function deviceId() {
  try {
    let id = localStorage.getItem('live-demo-device');
    if (!id) {
      id = `web-${Math.random().toString(16).slice(2, 14)}`;
      localStorage.setItem('live-demo-device', id);
    }
    return id;
  } catch {
    return `web-${Math.random().toString(16).slice(2, 14)}`;
  }
}

/** `el('div', {class: 'x', dataset: {id: 1}}, 'text', child)`: text is always text, never HTML. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Minor units -> "¥12.90". */
export function money(minor) {
  if (typeof minor !== 'number') return '';
  return `¥${(minor / 100).toFixed(minor % 100 === 0 ? 0 : 2)}`;
}

/** ms -> "04:59" (or "1:02:03"). */
export function clock(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(s).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });
export function count(n) {
  return n >= 10000 ? compact.format(n) : String(n);
}

/** A stable colour for a user name. */
export function userColor(user) {
  let h = 0;
  for (const ch of user) h = (h * 31 + ch.codePointAt(0)) % 360;
  return `hsl(${h} 75% 72%)`;
}

/** What a refusal code means, for people. */
export const REASONS = {
  sold_out: 'Sold out', limit_reached: 'You already have yours (per-person limit)',
  not_started: 'Not open yet', ended: 'The sale has ended', duplicate: 'Duplicate request',
  unknown_sale: 'No such sale', banned: 'You are banned in this room',
  refused: 'Grabs refused for this account', unavailable: 'Busy — try again',
  rate_limited: 'Slow down a little', muted: 'You are muted', blocked: 'Message blocked',
  too_large: 'Too long', disconnected: 'Connection dropped — try again', timeout: 'No answer — try again',
  offline: 'Offline', forbidden: 'Not allowed', unknown_phrase: 'Unknown phrase',
  all_claimed: 'All claimed', already_claimed: 'You already have this coupon',
  unknown_batch: 'No such coupon', lottery_closed: 'Entries are closed',
  follow_required: 'Follow the anchor to enter', unknown_lottery: 'No such lottery',
};
export const reason = (code) => REASONS[code] || code;
