import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, SHOTS, launch, openChat, adminLogin } from './browser.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

// end2end/triage.e2e.toml routes the premium tier to end2end/fake-upstream.mjs
// at $3 / $15 per million tokens; the fake reports 1234 tokens in, 56 out.
test('a complex question is answered through a remote provider and costed from its usage', async () => {
  const context = await browser.newContext();
  const page = await openChat(context);
  const question = 'My app crashes on start, here is the traceback:\n```\nTraceback (most recent call last):\n  File "app.py", line 3\nValueError: bad value\n```';
  await page.fill('#chat-input', question);
  await page.click('[data-testid=send]');
  const answer = page.locator('article.assistant').last();
  await page.waitForFunction(() => {
    const a = [...document.querySelectorAll('article.assistant')].pop();
    return a && !/streaming|waiting/.test(a.className);
  }, null, { timeout: 60_000 });
  assert.equal((await answer.locator('.text').textContent()).trim(), 'The traceback shows a ValueError raised in app.py on line 3.');
  assert.match(await answer.locator('.meta').textContent(), /complex → premium · fake\/premium/);
  const ticket = await page.locator('[data-testid=ticket-ref]').textContent();

  const admin = await adminLogin(context);
  await admin.goto(BASE + '/admin/requests');
  const row = admin.locator('table.requests tbody tr', { hasText: ticket }).first();
  await row.waitFor({ timeout: 10_000 });
  const cells = await row.locator('td').allTextContents();
  assert.deepEqual([cells[2], cells[3], cells[4], cells[5], cells[6]], ['complex', 'premium', 'fake/premium', '1234', '56']);
  // 1234 × $3 + 56 × $15 per million tokens = 3,702 + 840 micro-dollars
  assert.equal(cells[7], '$0.004542');
  await admin.screenshot({ path: SHOTS + 'admin-remote-provider.png', fullPage: true });
  await context.close();
});
