// Browser scenarios against a running engine node in dev mode (tests/browser/test_browser.py
// starts one and runs each scenario; `make screenshots` runs `showcase` into docs/).
//
//   node tests/browser/run.mjs SCENARIO --http http://127.0.0.1:8901 --ws-port 8900 --room R [--out DIR]
//
// Prints `RESULT <json>` on success; on failure the error, a screenshot of every page in --out,
// and exits 1.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  chatTexts, check, launch, openConsole, openViewer, pages, say, startProxy, waitForChat,
} from './harness.mjs';

const SCENARIOS = {
  /** Two viewers (one JSON, one msgpack) see each other's danmaku, emoji and quick phrases. */
  async danmaku({ browser, base, room }) {
    const console_ = await openConsole(browser, base, room); // seeds the quick phrases
    const alice = await openViewer(browser, base, room, 'alice');
    const bob = await openViewer(browser, base, room, 'bob', { params: { codec: 'msgpack' } });
    const codecs = await Promise.all([alice, bob].map((p) => p.evaluate(() => window.demo.client._ws.protocol)));
    check(codecs[0] === 'json' && codecs[1] === 'msgpack', 'codecs negotiated', codecs);

    await say(alice, 'hello from alice 👋');
    await bob.fill('#chat-input', 'hi alice, bob here');
    await bob.click('#emoji-toggle');
    await bob.click('#emoji-panel button:text-is("🔥")');
    await bob.click('#send');
    await alice.waitForSelector('#phrases .chip');
    const phrase = await alice.textContent('#phrases .chip');
    await alice.click('#phrases .chip');

    const expected = ['hello from alice 👋', 'hi alice, bob here🔥', phrase];
    for (const page of [alice, bob]) await waitForChat(page, expected);
    await console_.waitForFunction((texts) => texts.every((t) => [...document.querySelectorAll('#chat .msg .text')]
      .some((n) => n.textContent === t)), expected);
    const shown = await alice.$$eval('#chat .msg .text', (nodes) => nodes.map((n) => n.textContent));
    check(expected.every((t) => shown.includes(t)), 'alice shows every message', shown);
    const logs = { alice: await chatTexts(alice), bob: await chatTexts(bob) };
    check(JSON.stringify(logs.alice) === JSON.stringify(logs.bob), 'both saw the same chat in the same order', logs);
    return { codecs, chat: logs.alice };
  },

  /** The like total rises for everyone, and the console's live numbers follow. */
  async likes({ browser, base, room }) {
    const console_ = await openConsole(browser, base, room);
    const alice = await openViewer(browser, base, room, 'alice');
    const bob = await openViewer(browser, base, room, 'bob');
    const before = Number(await bob.getAttribute('#like-total', 'data-total'));
    for (let i = 0; i < 7; i++) await alice.click('#like-button');
    for (let i = 0; i < 5; i++) await bob.click('#like-button');
    const total = before + 12;
    for (const page of [alice, bob]) await page.waitForSelector(`#like-total[data-total="${total}"]`);
    await console_.waitForSelector(`#n-likes[data-value="${total}"]`);
    const floated = await alice.$$eval('#hearts .float-heart', (n) => n.length);
    return { before, total, hearts: floated };
  },

  /** The anchor starts a flash sale from the console; the viewers' popup counts down and shows
   * the live stock; grabs show their results. */
  async seckill({ browser, base, room }) {
    const console_ = await openConsole(browser, base, room);
    const alice = await openViewer(browser, base, room, 'alice');
    const bob = await openViewer(browser, base, room, 'bob');
    await console_.selectOption('#sale-product', 'teapot');
    await console_.fill('#sale-price', '99');
    await console_.fill('#sale-stock', '3');
    await console_.fill('#sale-limit', '1');
    await console_.fill('#sale-delay', '6');
    await console_.fill('#sale-duration', '120');
    await console_.click('#sale-start');

    await alice.waitForSelector('#seckill:not([hidden])');
    check((await alice.textContent('#seckill-name')).includes('teapot'), 'the popup names the product');
    check((await alice.textContent('#seckill-price')) === '¥99', 'the popup shows the sale price');
    await alice.waitForSelector('#seckill-stock[data-left="3"][data-stock="3"]');
    check((await alice.textContent('#seckill-stock')) === '3 / 3 left', 'the popup shows the stock');
    await alice.waitForSelector('#seckill-countdown[data-phase="open"]');
    const countdowns = await alice.evaluate(() => window.demo.countdowns);
    const upcoming = countdowns.filter((t) => /^Starts in 00:0\d$/.test(t));
    check(upcoming.length >= 2, 'a countdown to the start was shown, second by second', countdowns);
    check(/^Ends in 0[12]:\d\d$/.test(await alice.textContent('#seckill-countdown')), 'then a countdown to the end');

    await alice.click('#seckill-grab');
    await alice.waitForSelector('#seckill-result[data-code="ok"]');
    const won = await alice.textContent('#seckill-result');
    check(won.includes('Got it'), 'a granted grab says so', won);
    await bob.waitForSelector('#seckill-stock[data-left="2"]');
    await alice.click('#seckill-grab');
    await alice.waitForSelector('#seckill-result[data-code="limit_reached"]');
    await bob.click('#seckill-grab');
    await bob.waitForSelector('#seckill-result[data-code="ok"]');
    await alice.waitForSelector('#seckill-stock[data-left="1"]');
    await console_.waitForFunction(() => document.querySelector('#sales .sale-row')?.textContent.includes('1 / 3 left'));
    return {
      countdowns: countdowns.slice(0, 3),
      results: await alice.evaluate(() => window.demo.results.map((r) => ({ ok: r.ok, code: r.code }))),
      stock: await alice.textContent('#seckill-stock'),
    };
  },

  /** The network drops a viewer's connection (the proxy closes it and refuses new ones); the
   * room goes on; the network comes back: the client resumes, with nothing missed. */
  async resume({ browser, base, room, wsPort }) {
    const proxy = await startProxy(wsPort);
    try {
      const console_ = await openConsole(browser, base, room);
      const alice = await openViewer(browser, base, room, 'alice',
        { params: { ws: `ws://127.0.0.1:${proxy.port}/v1/ws` } });
      const bob = await openViewer(browser, base, room, 'bob');
      await say(bob, 'before the cut');
      await waitForChat(alice, ['before the cut']);

      proxy.cut();
      await alice.waitForSelector('#conn[data-state="reconnecting"]');
      const missed = ['missed 1', 'missed 2 🎉', 'missed 3', 'missed 4', 'missed 5'];
      for (const text of missed) {
        await say(bob, text);
        await waitForChat(bob, [text]);
      }
      for (let i = 0; i < 4; i++) await bob.click('#like-button');
      await bob.waitForSelector('#like-total[data-total="4"]');
      await console_.fill('#pin-text', 'pinned while alice was away');
      await console_.click('#pin');
      await bob.waitForSelector('#pinned:not([hidden])');
      const whileAway = await chatTexts(alice);
      check(!whileAway.some((t) => missed.includes(t)), 'alice was really cut off', whileAway);

      proxy.restore();
      await alice.waitForFunction(() => window.demo.welcomes.length >= 2);
      await alice.waitForSelector('#conn[data-state="open"]');
      const welcomes = await alice.evaluate(() => window.demo.welcomes);
      check(welcomes.at(-1).recovery === 'resumed', 'the reconnect resumed', welcomes);
      await waitForChat(alice, missed);
      await alice.waitForSelector('#like-total[data-total="4"]');
      await alice.waitForSelector('#pinned-text:text-is("pinned while alice was away")');
      await say(bob, 'after the resume');
      await waitForChat(alice, ['after the resume']);

      const log = await alice.evaluate(() => window.demo.chatLog);
      const texts = log.map((m) => m.text);
      const wanted = ['before the cut', ...missed, 'after the resume'];
      check(JSON.stringify(texts) === JSON.stringify(wanted), 'every message once, in order', texts);
      check(new Set(log.map((m) => m.id)).size === log.length, 'no duplicates', log);
      const seqs = log.map((m) => m.seq);
      check(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), 'positions increase', seqs);
      const states = await alice.evaluate(() => window.demo.states);
      return { welcomes, texts, states };
    } finally {
      proxy.close();
    }
  },

  /** A silent network (nothing closes, nothing arrives): the client's own heartbeat notices,
   * reconnects and resumes. */
  async heartbeat({ browser, base, room, wsPort }) {
    const proxy = await startProxy(wsPort);
    try {
      const alice = await openViewer(browser, base, room, 'alice',
        { params: { ws: `ws://127.0.0.1:${proxy.port}/v1/ws`, ping_ms: '500', dead_ms: '2500' } });
      const bob = await openViewer(browser, base, room, 'bob');
      await say(bob, 'before the silence');
      await waitForChat(alice, ['before the silence']);
      const rtt = await alice.evaluate(() => window.demo.client.rttMs);
      check(typeof rtt === 'number', 'pings measured a round trip', rtt);

      proxy.freeze();
      const missed = ['into the silence 1', 'into the silence 2'];
      for (const text of missed) {
        await say(bob, text);
        await waitForChat(bob, [text]);
      }
      await alice.waitForFunction(() => window.demo.welcomes.length >= 2);
      const welcomes = await alice.evaluate(() => window.demo.welcomes);
      check(welcomes.at(-1).recovery === 'resumed', 'the reconnect resumed', welcomes);
      await waitForChat(alice, missed);
      const texts = await chatTexts(alice);
      check(JSON.stringify(texts) === JSON.stringify(['before the silence', ...missed]),
        'every message once, in order', texts);
      return { welcomes, texts, rtt };
    } finally {
      proxy.close();
    }
  },

  /** The anchor console: pin, reply to a viewer, mute, stream notice, product cards, numbers. */
  async console({ browser, base, room }) {
    const console_ = await openConsole(browser, base, room);
    const alice = await openViewer(browser, base, room, 'alice');
    const bob = await openViewer(browser, base, room, 'bob');
    await console_.waitForFunction(() => Number(document.querySelector('#n-online').textContent) >= 3);

    await console_.fill('#pin-text', 'Welcome! Flash sale at 20:00');
    await console_.click('#pin');
    await alice.waitForSelector('#pinned-text:text-is("Welcome! Flash sale at 20:00")');

    await say(alice, 'can you show the teapot?');
    const line = '#chat .msg[data-user="alice"]';
    await console_.waitForSelector(line);
    await console_.hover(line);
    await console_.click(`${line} button:text-is("Reply")`);
    await console_.fill('#reply-text', 'sure, here it is');
    await console_.click('#reply-send');
    await alice.waitForSelector('#chat .msg.staff .at:text-is("@alice ")');
    const reply = await alice.textContent('#chat .msg.staff');

    await console_.click('#products [data-product="teapot"] button:text-is("Pin")');
    await alice.waitForSelector('#product-card[data-product="teapot"]:not([hidden])');

    await console_.click('#stream-interrupted');
    await alice.waitForSelector('#stream-notice:not([hidden])');
    await console_.click('#stream-resumed');
    await alice.waitForSelector('#stream-notice', { state: 'hidden' });

    await console_.fill('#mute-user', 'bob');
    await console_.click('#mute');
    await console_.waitForSelector('#log .ok[data-method="mute"]');
    await say(bob, 'am I muted?');
    await bob.waitForSelector('#form-error:text-is("You are muted")');
    await say(alice, 'after the mute');
    await waitForChat(alice, ['after the mute']);
    check(!(await chatTexts(alice)).includes('am I muted?'), 'a muted viewer reaches nobody');
    return { reply, log: await console_.evaluate(() => window.demo.log.map((l) => `${l.method}:${l.ok}`)) };
  },

  /** Coupons and a lottery from the console: the viewers' popups, claims, live counts, entry
   * by keyword and by follow, the draw and its winners. */
  async promos({ browser, base, room }) {
    const console_ = await openConsole(browser, base, room);
    const alice = await openViewer(browser, base, room, 'alice');
    const bob = await openViewer(browser, base, room, 'bob');
    await console_.fill('#coupon-value', '10');
    await console_.fill('#coupon-threshold', '99');
    await console_.fill('#coupon-quantity', '2');
    await console_.click('#coupon-drop');
    await alice.waitForSelector('#coupon:not([hidden])');
    check((await alice.textContent('#coupon-amount')) === '¥10 off', 'the coupon popup shows its value');
    await alice.waitForSelector('#coupon-meta[data-left="2"]');
    await alice.click('#coupon-claim');
    await alice.waitForSelector('#coupon-result[data-code="ok"]');
    await bob.waitForSelector('#coupon-meta[data-left="1"]');
    await bob.click('#coupon-claim');
    await bob.waitForSelector('#coupon-result[data-code="ok"]');
    await alice.waitForSelector('#coupon-meta[data-left="0"]');
    await console_.waitForFunction(() => document.querySelector('#coupons .sale-row')?.textContent.includes('0 / 2 left'));

    await console_.fill('#lottery-prize', 'A Yixing clay teapot');
    await console_.fill('#lottery-winners', '1');
    await console_.selectOption('#lottery-entry', 'both');
    await console_.fill('#lottery-keyword', 'teapot');
    await console_.click('#lottery-start');
    await alice.waitForSelector('#lottery[data-state="open"]:not([hidden])');
    check((await alice.textContent('#lottery-prize')) === 'A Yixing clay teapot', 'the lottery popup shows the prize');
    await alice.click('#lottery-enter'); // sends the keyword as a danmaku
    await alice.waitForSelector('#lottery-result[data-code="ok"]');
    await bob.click('#follow'); // a follow enters too
    await bob.waitForSelector('#follow[data-following="true"]');
    await alice.waitForSelector('#lottery-how[data-entrants="2"]');
    await console_.waitForFunction(() => document.querySelector('#lotteries .entrants')?.textContent.startsWith('2 entered'));
    await console_.click('#lotteries button:text-is("Draw")');
    for (const page of [alice, bob]) await page.waitForSelector('#lottery[data-state="drawn"]:not([hidden])');
    const winners = await alice.$$eval('#lottery-winners li', (nodes) => nodes.map((n) => n.dataset.user));
    check(winners.length === 1 && ['alice', 'bob'].includes(winners[0]), 'one winner, an entrant', winners);
    const winner = winners[0] === 'alice' ? alice : bob;
    check((await winner.textContent('#lottery-how')).includes('You won'), 'the winner is told');
    return { winners, coupon: await bob.textContent('#coupon-meta') };
  },

  /** A room in full swing, for the screenshots in docs/ (`make screenshots`). */
  async showcase({ browser, base, room, out }) {
    const console_ = await openConsole(browser, base, room);
    const alice = await openViewer(browser, base, room, 'alice',
      { name: 'Alice', params: { title: 'Spring tea live 🍵' } });
    const bob = await openViewer(browser, base, room, 'bob', { name: 'Bob', params: { codec: 'msgpack' } });
    const carol = await openViewer(browser, base, room, 'carol', { name: 'Carol' });
    await console_.fill('#pin-text', 'Spring tea festival: flash sale every 30 minutes 🍵');
    await console_.click('#pin');
    await say(bob, 'Good evening everyone! 🌸');
    await say(carol, 'Is the Longjing from this year? 🍵');
    await say(alice, 'Just joined, what did I miss? 😄');
    await carol.click('#phrases .chip >> nth=1');
    const line = '#chat .msg[data-user="carol"]';
    await console_.waitForSelector(line);
    await console_.hover(line);
    await console_.click(`${line} button:text-is("Reply")`);
    await console_.fill('#reply-text', 'Yes, picked last week! 🌱');
    await console_.click('#reply-send');
    await say(bob, 'Grabbing one for my mum 🎁');
    for (const page of [alice, bob, carol]) {
      for (let i = 0; i < 6; i++) await page.click('#like-button');
    }
    await console_.fill('#coupon-quantity', '500');
    await console_.click('#coupon-drop');
    await bob.waitForSelector('#coupon:not([hidden])');
    await bob.click('#coupon-claim');
    await console_.fill('#lottery-draw-in', '600');
    await console_.selectOption('#lottery-entry', 'both');
    await console_.click('#lottery-start');
    await carol.waitForSelector('#lottery:not([hidden])');
    await carol.click('#lottery-enter');
    await bob.click('#follow');
    await console_.waitForFunction(() => document.querySelector('#lotteries .entrants')?.textContent.startsWith('2 entered'));
    for (const id of ['#lottery', '#coupon']) await alice.click(`${id} [data-close]`);
    await console_.selectOption('#sale-product', 'tea');
    await console_.fill('#sale-price', '99');
    await console_.fill('#sale-stock', '100');
    await console_.fill('#sale-delay', '3');
    await console_.fill('#sale-duration', '300');
    await console_.click('#sale-start');
    await alice.waitForSelector('#seckill-countdown[data-phase="open"]');
    await bob.click('#seckill-grab');
    await carol.click('#seckill-grab');
    await alice.waitForSelector('#seckill-stock[data-left="98"]');
    await say(carol, 'Got it!! 🎉🎉');
    await waitForChat(alice, ['Got it!! 🎉🎉']);
    await console_.hover('#chat .msg[data-user="carol"] >> nth=-1');
    await alice.waitForSelector('#like-total[data-total="18"]');
    await console_.waitForSelector('#n-likes[data-value="18"]');
    await console_.waitForFunction(() => document.querySelector('#sales .sale-row')?.textContent.includes('98 / 100'));
    await alice.click('#like-button');
    await alice.click('#like-button');
    fs.mkdirSync(out, { recursive: true });
    await alice.screenshot({ path: path.join(out, 'demo-viewer.png') });
    await console_.screenshot({ path: path.join(out, 'demo-console.png') });
    return { screenshots: ['demo-viewer.png', 'demo-console.png'].map((f) => path.join(out, f)) };
  },
};

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      http: { type: 'string' }, 'ws-port': { type: 'string' }, room: { type: 'string' },
      out: { type: 'string', default: 'browser-out' },
    },
  });
  const [name] = positionals;
  const scenario = SCENARIOS[name];
  if (!scenario || !values.http || !values.room) {
    process.stderr.write(`usage: run.mjs {${Object.keys(SCENARIOS).join('|')}} --http URL --ws-port N --room R [--out DIR]\n`);
    process.exit(2);
  }
  const browser = await launch();
  const ctx = { browser, base: values.http, room: values.room, wsPort: Number(values['ws-port']), out: values.out };
  try {
    const details = await scenario(ctx);
    const errors = pages.flatMap((p) => p.errors.filter((e) => !e.startsWith('console:')));
    check(errors.length === 0, 'no uncaught errors in the pages', errors);
    process.stdout.write(`RESULT ${JSON.stringify({ scenario: name, ok: true, details })}\n`);
  } catch (err) {
    process.stderr.write(`scenario ${name} failed: ${err.stack || err}\n`);
    if (err.details !== undefined) process.stderr.write(`details: ${JSON.stringify(err.details)}\n`);
    for (const [i, page] of pages.entries()) {
      process.stderr.write(`page ${i} ${page.url()} errors: ${JSON.stringify(page.errors)}\n`);
      try {
        fs.mkdirSync(values.out, { recursive: true });
        await page.screenshot({ path: path.join(values.out, `${name}-failure-${i}.png`) });
      } catch { /* the page may be gone */ }
    }
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

await main();
