// The customer widget: safe markdown, feedback, rate limits, handoff, stop,
// the embed snippet, a phone-sized screen, and sending without JavaScript.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, SHOTS, launch, openChat, sql, lastAnswerDone } from './browser.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

// Classified complex (a traceback), so routed to the fake upstream, which
// answers XSS-PROBE questions with hostile markup.
const HOSTILE_QUESTION = 'XSS-PROBE <img src=x onerror="window.__xss=9"> my app crashes, traceback:\n```\nTraceback (most recent call last):\n  File "app.py", line 3\nValueError: bad value\n```';

test('markup from the customer and from the model is inert; code can be copied; feedback is stored and can change', async () => {
  const context = await browser.newContext();
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  const page = await openChat(context);
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });

  await page.fill('#chat-input', HOSTILE_QUESTION);
  await page.click('[data-testid=send]');
  const answer = await lastAnswerDone(page, 60_000);
  assert.match(await answer.locator('.meta').textContent(), /fake\/premium/);

  // The hostile text is shown as text, nothing of it runs or loads.
  assert.equal(await page.locator('[data-testid=chat-log] img, [data-testid=chat-log] script').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss ?? null), null);
  assert.deepEqual(dialogs, []);
  assert.match(await answer.locator('.text').textContent(), /<img src=x onerror=/);
  assert.match(await page.locator('article.user .text').last().textContent(), /<img src=x onerror="window.__xss=9">/);
  // The link text stays; its javascript: target does not.
  assert.match(await answer.locator('.text').textContent(), /click me/);
  assert.equal(await page.locator('[data-testid=chat-log] a[href^="javascript"]').count(), 0);
  assert.equal(await answer.locator('a').count(), 0);
  await page.screenshot({ path: SHOTS + 'widget-xss.png', fullPage: true });

  // The code block renders with a copy button that copies it.
  await answer.locator('pre code').waitFor();
  assert.equal((await answer.locator('pre code').textContent()).trim(), 'echo copied');
  await answer.locator('button[data-copy]').click();
  assert.equal((await answer.locator('button[data-copy]').textContent()).trim(), 'Copied');
  assert.equal((await page.evaluate(() => navigator.clipboard.readText())).trim(), 'echo copied');

  // Thumbs up, then a change of mind: thumbs down with a comment.
  await answer.locator('[data-testid=thumbs-up]').click();
  await answer.locator('[data-testid=feedback-comment]').waitFor();
  const feedbackRow = () => sql(`SELECT f.rating, coalesce(f.comment, ''), c.model, c.tier
    FROM feedback f JOIN llm_calls c ON c.request_id = f.request_id AND c.kind = 'generate' AND c.status = 'ok'
    ORDER BY f.updated_at DESC LIMIT 1`)[0];
  await waitFor(() => feedbackRow()?.[0] === '1', 'thumbs up stored');
  assert.deepEqual(feedbackRow(), ['1', '', 'fake/premium', 'premium']);
  await answer.locator('[data-testid=thumbs-down]').click();
  await answer.locator('[data-testid=feedback-comment]').fill('The link did nothing.');
  await answer.locator('[data-testid=feedback-send]').click();
  await waitFor(() => feedbackRow()?.[1] === 'The link did nothing.', 'comment stored');
  assert.deepEqual(feedbackRow(), ['-1', 'The link did nothing.', 'fake/premium', 'premium']);
  assert.equal(sql(`SELECT count(*) FROM feedback WHERE ticket_id = (SELECT ticket_id FROM feedback ORDER BY updated_at DESC LIMIT 1)`)[0][0], '1',
    'a changed verdict replaces the first one');

  // A reload shows the verdict the customer gave.
  await page.reload();
  await page.waitForSelector('[data-hydrated="true"]');
  const restored = page.locator('article.assistant').last();
  assert.equal(await restored.locator('[data-testid=thumbs-down]').getAttribute('aria-pressed'), 'true');
  assert.equal(await restored.locator('[data-testid=thumbs-up]').getAttribute('aria-pressed'), 'false');
  assert.equal(await page.locator('[data-testid=chat-log] img').count(), 0);
  await context.close();
});

test('a rate-limited customer sees when they can send again, and keeps their text', async () => {
  const context = await browser.newContext();
  const page = await openChat(context);
  // Empty this client's bucket, as many quick messages would.
  sql("UPDATE rate_limit_buckets SET tokens = 0, updated_at = now() WHERE bucket LIKE 'ip:%'");
  await page.fill('#chat-input', 'Do you ship to Canada?');
  await page.click('[data-testid=send]');
  const notice = page.locator('[data-testid=chat-error]');
  await notice.waitFor();
  assert.match(await notice.textContent(), /You can send again in [1-9]\d* s\./);
  assert.equal(await page.inputValue('#chat-input'), 'Do you ship to Canada?');
  assert.equal(await page.locator('article').count(), 0, 'nothing was added to the conversation');
  assert.ok(await page.locator('[data-testid=send]').isDisabled(), 'sending waits for the limit');
  await page.screenshot({ path: SHOTS + 'widget-rate-limited.png' });
  // The countdown ends by itself and sending works again.
  await notice.waitFor({ state: 'detached', timeout: 10_000 });
  assert.ok(await page.locator('[data-testid=send]').isEnabled());
  await context.close();
});

test('"talk to a person" escalates the ticket and shows its reference', async () => {
  const context = await browser.newContext();
  const page = await openChat(context);
  await page.click('[data-testid=human]');
  await page.locator('[data-testid=handoff]').waitFor();
  const reference = await page.locator('[data-testid=ticket-ref]').textContent();
  assert.match(await page.locator('[data-testid=handoff]').textContent(), new RegExp(reference));
  const [status] = sql(`SELECT status FROM tickets WHERE upper(substr(replace(id::text, '-', ''), 1, 8)) = '${reference.slice(2)}'`)[0];
  assert.equal(status, 'escalated');
  await page.reload();
  await page.locator('[data-testid=handoff]').waitFor();
  assert.equal(await page.locator('[data-testid=human]').isDisabled(), true);
  await context.close();
});

test('"Stop" ends an answer; the call is recorded as cancelled', async () => {
  const context = await browser.newContext();
  const page = await openChat(context);
  await page.waitForTimeout(1_000);
  await page.fill('#chat-input', 'Can you explain in detail how refunds work for orders paid by card?');
  await page.click('[data-testid=send]');
  await page.waitForFunction(() => {
    const a = [...document.querySelectorAll('article.assistant')].pop();
    return a && /streaming/.test(a.className);
  }, null, { timeout: 60_000 });
  await page.click('[data-testid=stop]');
  await page.waitForFunction(() => /stopped/.test([...document.querySelectorAll('article.assistant')].pop()?.className ?? ''));
  assert.match(await page.locator('article.assistant .meta').last().textContent(), /stopped/);
  await page.locator('[data-testid=send]').waitFor();
  const reference = await page.locator('[data-testid=ticket-ref]').textContent();
  await waitFor(() => sql(`SELECT c.status FROM llm_calls c JOIN tickets t ON t.id = c.ticket_id
      WHERE upper(substr(replace(t.id::text, '-', ''), 1, 8)) = '${reference.slice(2)}' AND c.kind = 'generate'`)
    .map((r) => r[0]).join() === 'cancelled', 'one cancelled call row');
  await context.close();
});

test('the one-line embed snippet adds a working chat to a plain page', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(BASE + '/embed-example.html');
  const launcher = page.locator('.triage-launcher');
  await launcher.waitFor();
  assert.equal(await launcher.getAttribute('aria-expanded'), 'false');
  await launcher.click();
  assert.equal(await launcher.getAttribute('aria-expanded'), 'true');
  const frame = page.frameLocator('.triage-panel iframe');
  await frame.locator('[data-hydrated="true"]').waitFor({ timeout: 30_000 });
  assert.equal((await frame.locator('h1').textContent()).trim(), 'Acme help');
  // the colour from data-color reached the widget's header
  const header = await frame.locator('.chat-header').evaluate((e) => getComputedStyle(e).backgroundColor);
  assert.equal(header, 'rgb(15, 118, 110)');
  await frame.locator('#chat-input').fill('What are your opening hours?');
  await frame.locator('[data-testid=send]').click();
  await frame.locator('article.assistant .feedback').waitFor({ timeout: 120_000 });
  assert.ok((await frame.locator('article.assistant .text').textContent()).trim().length > 5);
  await page.screenshot({ path: SHOTS + 'embed-open.png' });
  // Escape inside the iframe reaches embed.js by postMessage: wait for it
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => document.querySelector('.triage-launcher').getAttribute('aria-expanded') === 'false', null, { timeout: 5_000 });
  await context.close();
});

test('on a phone-sized screen the chat fits and the embed panel fills the screen', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await openChat(context);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px`);
  const composer = await page.locator('.composer').boundingBox();
  assert.ok(composer.y + composer.height <= 844 && composer.width <= 390, `composer off screen: ${JSON.stringify(composer)}`);
  await page.screenshot({ path: SHOTS + 'phone-chat.png' });

  const shop = await context.newPage();
  await shop.goto(BASE + '/embed-example.html');
  await shop.locator('.triage-launcher').click();
  const panel = await shop.locator('.triage-panel').boundingBox();
  assert.deepEqual([panel.x, panel.y, panel.width, panel.height], [0, 0, 390, 844]);
  await shop.frameLocator('.triage-panel iframe').locator('[data-hydrated="true"]').waitFor({ timeout: 30_000 });
  await shop.screenshot({ path: SHOTS + 'phone-embed.png' });
  await context.close();
});

test('without JavaScript, history is readable and a message can be sent', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(BASE + '/');
  await page.fill('#chat-input', 'Where can I find my invoice?');
  await Promise.all([page.waitForURL(BASE + '/', { timeout: 120_000 }), page.click('[data-testid=send]')]);
  const texts = await page.locator('article .text').allTextContents();
  assert.equal(texts.length, 2, `expected the question and its answer, got ${JSON.stringify(texts)}`);
  assert.equal(texts[0].trim(), 'Where can I find my invoice?');
  assert.ok(texts[1].trim().length > 5);
  await page.screenshot({ path: SHOTS + 'no-js.png', fullPage: true });
  await context.close();
});

async function waitFor(check, what, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  while (!check()) {
    assert.ok(Date.now() < deadline, `timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
