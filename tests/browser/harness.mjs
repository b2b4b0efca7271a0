// Shared pieces of the browser scenarios: Debian's Chromium driven by playwright-core, page
// helpers, and a TCP proxy that can cut or freeze a viewer's connection.
import net from 'node:net';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// The machine's network is closed: without these Chromium tries to reach Google. Playwright
// adds --headless and a fresh temporary --user-data-dir for every launch.
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-sync',
  '--disable-default-apps', '--disable-extensions', '--mute-audio',
];
export const TIMEOUT = Number(process.env.BROWSER_TIMEOUT_MS || 30000); // per wait, generous

export async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/** A page in its own browser context (own storage: another person), with its errors kept. */
export const pages = [];

export async function openPage(browser, url, { width = 430, height = 860 } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.errors = [];
  pages.push(page);
  page.on('pageerror', (err) => page.errors.push(String(err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.errors.push(`console: ${msg.text()}`);
  });
  await page.goto(url);
  return page;
}

export async function openViewer(browser, base, room, user, extra = {}) {
  const query = new URLSearchParams({ room, user, name: extra.name || user, ...extra.params });
  const page = await openPage(browser, `${base}/demo/viewer.html?${query}`);
  await page.waitForSelector('#conn[data-state="open"]');
  return page;
}

export async function openConsole(browser, base, room) {
  const page = await openPage(browser, `${base}/demo/console.html?room=${room}`, { width: 1400, height: 900 });
  await page.waitForSelector('#control-conn[data-state="open"]');
  await page.waitForSelector('#chat-conn[data-state="open"]');
  // dev mode: an empty room gets the demo products and quick phrases
  await page.waitForFunction(() => window.demo.products.length > 0);
  return page;
}

export async function say(page, text) {
  await page.fill('#chat-input', text);
  await page.click('#send');
}

/** The chat texts a viewer page has received, in order. */
export function chatTexts(page) {
  return page.evaluate(() => window.demo.chatLog.map((m) => m.text));
}

export async function waitForChat(page, texts) {
  await page.waitForFunction(
    (wanted) => wanted.every((t) => window.demo.chatLog.some((m) => m.text === t)), texts);
}

export function check(condition, message, details) {
  if (!condition) {
    const error = new Error(message);
    error.details = details;
    throw error;
  }
}

/**
 * A TCP proxy in front of the viewer port. `cut()` closes every connection (the browser sees
 * its WebSocket drop) and refuses new ones until `restore()`; `freeze()` stops forwarding on
 * the open connections without closing them (a silent network: only the client's own
 * heartbeat can notice), while new connections still pass.
 */
export async function startProxy(targetPort) {
  const pairs = new Set();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream, frozen: false };
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    for (const socket of [client, upstream]) {
      socket.on('error', end);
      socket.on('close', () => { if (!pair.frozen) end(); });
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    connections: () => pairs.size,
    cut() {
      refusing = true;
      for (const pair of [...pairs]) {
        pair.client.destroy();
        pair.upstream.destroy();
        pairs.delete(pair);
      }
    },
    restore() {
      refusing = false;
    },
    freeze() {
      for (const pair of pairs) {
        pair.frozen = true;
        pair.client.unpipe(pair.upstream);
        pair.upstream.unpipe(pair.client);
        pair.client.pause();
        pair.upstream.pause();
        pairs.delete(pair);
        (this.frozenPairs ??= []).push(pair);
      }
    },
    close() {
      for (const pair of [...pairs, ...(this.frozenPairs ?? [])]) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      server.close();
    },
  };
}
