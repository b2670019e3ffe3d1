import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, SHOTS, launch, openChat, adminLogin } from './browser.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('a message is answered token by token by the local model, kept on reload, and listed in admin', async () => {
  const context = await browser.newContext();
  const page = await openChat(context);

  // A person reads the page before typing; meanwhile the browser finishes
  // compiling the (debug, 4 MB) wasm, which on this 2-core machine would
  // otherwise compete with the model for the CPU and skew the timing.
  await page.waitForTimeout(2_000);
  await page.fill('#chat-input', 'What are your opening hours?');
  const sentAt = Date.now();
  await page.click('[data-testid=send]');

  // Watch the answer grow: a streamed answer is seen at several lengths.
  const answer = page.locator('article.assistant').last();
  const lengths = new Set();
  let firstTokenMs = null;
  const deadline = Date.now() + 120_000;
  for (;;) {
    const [text, cls] = await Promise.all([
      answer.locator('.text').textContent(),
      answer.getAttribute('class'),
    ]);
    if (text && text.trim().length > 0) {
      if (firstTokenMs === null) firstTokenMs = Date.now() - sentAt;
      lengths.add(text.length);
    }
    if (!/streaming|waiting/.test(cls ?? '')) break;
    assert.ok(Date.now() < deadline, 'the answer did not finish in time');
    await page.waitForTimeout(15);
  }
  console.log(`# first token on screen ${firstTokenMs} ms after send; ${lengths.size} distinct lengths seen`);
  assert.ok(lengths.size >= 3, `expected a streamed answer, saw ${lengths.size} lengths`);
  assert.doesNotMatch(await answer.getAttribute('class'), /failed/);
  const finalText = (await answer.locator('.text').textContent()).trim();
  assert.ok(finalText.length > 10, `answer too short: ${finalText}`);
  const meta = await answer.locator('.meta').textContent();
  assert.match(meta, /simple → budget · local\/smollm2-budget/);
  const ticket = await page.locator('[data-testid=ticket-ref]').textContent();
  assert.match(ticket, /^T-[0-9A-F]{8}$/);
  await page.screenshot({ path: SHOTS + 'chat-answered.png', fullPage: true });

  // Reload: the same conversation comes back from Postgres.
  await page.reload();
  await page.waitForSelector('[data-hydrated="true"]');
  const texts = await page.locator('article .text').allTextContents();
  assert.deepEqual(texts.map((t) => t.trim()), ['What are your opening hours?', finalText]);
  assert.equal(await page.locator('[data-testid=ticket-ref]').textContent(), ticket);

  // Admin: the call is listed with its tier, model and tokens.
  const admin = await adminLogin(context);
  await admin.goto(BASE + '/admin/requests');
  const row = admin.locator('table.requests tbody tr', { hasText: ticket }).first();
  await row.waitFor({ timeout: 10_000 });
  const cells = await row.locator('td').allTextContents();
  assert.equal(cells[2], 'simple');
  assert.equal(cells[3], 'budget');
  assert.equal(cells[4], 'local/smollm2-budget');
  assert.ok(Number(cells[5]) > 10, `input tokens ${cells[5]}`);
  assert.ok(Number(cells[6]) > 0, `output tokens ${cells[6]}`);
  assert.equal(cells[7], '$0');
  assert.equal(cells[10], 'BYPASS'); // the widget's temperature is not 0: not cached
  assert.equal(cells[11], 'ok');
  await admin.screenshot({ path: SHOTS + 'admin-requests.png', fullPage: true });
  await context.close();
});

test('an empty message gets a friendly line and sends nothing', async () => {
  const context = await browser.newContext();
  const page = await openChat(context);
  await page.click('[data-testid=send]');
  await page.locator('[data-testid=chat-error]').waitFor();
  assert.match(await page.locator('[data-testid=chat-error]').textContent(), /type a message/i);
  assert.equal(await page.locator('article').count(), 0);
  await context.close();
});

test('a message over the limit is refused with a clear error and the text is kept', async () => {
  const context = await browser.newContext();
  const page = await openChat(context);
  const long = 'a'.repeat(9000);
  await page.fill('#chat-input', long);
  await page.click('[data-testid=send]');
  await page.locator('[data-testid=chat-error]').waitFor();
  assert.match(await page.locator('[data-testid=chat-error]').textContent(), /too long/i);
  assert.equal((await page.inputValue('#chat-input')).length, long.length);
  assert.equal(await page.locator('article').count(), 0);
  await context.close();
});

test('phone-sized viewport shows the whole chat', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 780 }, isMobile: true });
  const page = await openChat(context);
  const box = await page.locator('.composer').boundingBox();
  assert.ok(box.x >= 0 && box.x + box.width <= 390, 'composer fits the width');
  await page.screenshot({ path: SHOTS + 'chat-phone.png' });
  await context.close();
});
