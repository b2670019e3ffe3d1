// The dashboard: refused without signing in; sign in; the overview and its
// filters (kept in the URL); a ticket's whole flow.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, SHOTS, ADMIN, launch, openChat, adminLogin, lastAnswerDone } from './browser.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('admin pages send a visitor to sign in, and admin functions refuse them', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  for (const path of ['/admin', '/admin/requests?tier=premium', '/admin/tickets/T-00000000']) {
    await page.goto(BASE + path);
    assert.equal(new URL(page.url()).pathname, '/admin/login', path);
  }
  const status = await page.evaluate(async () => (await fetch('/api/admin/overview', { method: 'POST' })).status);
  assert.equal(status, 401);
  // a wrong password is refused with a message
  await page.fill('#username', ADMIN.username);
  await page.fill('#password', 'not the password');
  await page.click('button[type=submit]');
  await page.locator('[data-testid=login-error]').waitFor();
  assert.match(await page.locator('[data-testid=login-error]').textContent(), /Wrong username or password/);
  await context.close();
});

test('sign in, filter the overview by tier, open a ticket and see its flow and cost', async () => {
  const context = await browser.newContext();
  // A complex question answered by the fake premium provider, so there is
  // a ticket with a classification, a routing decision and a cost.
  const chat = await openChat(context);
  await chat.fill('#chat-input', 'My deploy fails with this traceback:\n```\nTraceback (most recent call last):\n  File "deploy.py", line 9\nKeyError: region\n```');
  await chat.click('[data-testid=send]');
  await lastAnswerDone(chat, 60_000);
  const ticket = await chat.locator('[data-testid=ticket-ref]').textContent();

  const admin = await adminLogin(context);
  await admin.locator('[data-testid=overview-cards]').waitFor();
  await admin.screenshot({ path: SHOTS + 'admin-overview.png', fullPage: true });
  const tiers = async () => (await admin.locator('[data-testid=by-tier] tbody tr td:first-child').allTextContents()).map((t) => t.trim());
  assert.ok((await tiers()).includes('premium'), `tiers: ${await tiers()}`);

  // Filter by tier: the URL carries it, and only that tier remains.
  await admin.selectOption('[data-testid=filter-tier]', 'premium');
  await admin.click('[data-testid=apply-filters]');
  await admin.waitForURL(/tier=premium/);
  await admin.waitForFunction(() => [...document.querySelectorAll('[data-testid=by-tier] tbody tr td:first-child')].map((t) => t.textContent.trim()).join() === 'premium');
  const shared = admin.url();
  const other = await context.newPage();
  await other.goto(shared);
  await other.locator('[data-testid=by-tier]').waitFor();
  assert.deepEqual((await other.locator('[data-testid=by-tier] tbody tr td:first-child').allTextContents()).map((t) => t.trim()), ['premium']);

  // The requests list, filtered to the ticket; its link opens the flow.
  await admin.goto(`${BASE}/admin/requests?ticket=${ticket}`);
  const link = admin.locator('table.requests tbody tr a', { hasText: ticket }).first();
  await link.waitFor();
  await link.click();
  await admin.waitForURL(new RegExp(`/admin/tickets/${ticket}`));
  await admin.locator('[data-testid=turn]').first().waitFor();
  assert.match(await admin.locator('[data-testid=classification]').first().textContent(), /complex/);
  assert.match(await admin.locator('[data-testid=routing]').first().textContent(), /premium/);
  assert.match(await admin.locator('[data-testid=attempts]').first().textContent(), /fake\/premium/);
  // 1234 tokens in, 56 out at $3 / $15 per million
  assert.equal((await admin.locator('[data-testid=ticket-cost]').textContent()).trim(), '$0.004542');
  await admin.screenshot({ path: SHOTS + 'admin-ticket.png', fullPage: true });

  // Sign out: the dashboard is closed again.
  await admin.click('[data-testid=logout]');
  await admin.waitForURL(/\/admin\/login/);
  await admin.goto(BASE + '/admin');
  assert.equal(new URL(admin.url()).pathname, '/admin/login');
  await context.close();
});
