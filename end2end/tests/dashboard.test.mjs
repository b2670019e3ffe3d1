// The dashboard's workflows: relabel a misclassification and retrain; run
// an experiment and read its results; see an alert fire (banner + webhook).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, SHOTS, launch, openChat, adminLogin, lastAnswerDone, sql } from './browser.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('a thumbs-down lands in review; the admin relabels it and retrains the classifier', async () => {
  const context = await browser.newContext();
  const chat = await openChat(context);
  await chat.fill('#chat-input', 'Why was my card charged twice for order 5521?');
  await chat.click('[data-testid=send]');
  const answer = await lastAnswerDone(chat);
  await answer.locator('[data-testid=thumbs-down]').click();
  await answer.locator('[data-testid=feedback-comment]').waitFor();

  const admin = await adminLogin(context);
  await admin.goto(BASE + '/admin/review');
  const item = admin.locator('[data-testid=review-item]', { hasText: 'charged twice for order 5521' }).first();
  await item.waitFor();
  await item.locator('[data-testid=label-medium]').click();
  await admin.waitForFunction(() => [...document.querySelectorAll('[data-testid=review-item]')]
    .every((row) => !row.textContent.includes('charged twice for order 5521')), null, { timeout: 10_000 });
  assert.deepEqual(sql("SELECT label, query FROM labels WHERE query LIKE '%order 5521%'"), [['medium', 'Why was my card charged twice for order 5521?']]);
  await admin.screenshot({ path: SHOTS + 'admin-review.png', fullPage: true });

  await admin.click('[data-testid=retrain]');
  const status = admin.locator('[data-testid=retrain-status]');
  await admin.waitForFunction(() => /Retrained on/.test(document.querySelector('[data-testid=retrain-status]')?.textContent ?? ''), null, { timeout: 240_000 });
  const text = await status.textContent();
  assert.match(text, /Retrained on 60 shipped examples and 1 labels/);
  assert.match(text, /63 examples in all/);
  await context.close();
});

test('an experiment is created, and its results are read from the calls it served', async () => {
  const context = await browser.newContext();
  const admin = await adminLogin(context);
  await admin.goto(BASE + '/admin/experiments');
  await admin.fill('[data-testid=exp-name]', 'Routing vs always premium');
  await admin.fill('[data-testid=exp-a]', 'model:fake/premium');
  await admin.fill('[data-testid=exp-b]', 'routing');
  await admin.fill('[data-testid=exp-split]', '50');
  await admin.click('[data-testid=exp-create]');
  const card = admin.locator('[data-testid=experiment]').first();
  await card.waitFor();
  assert.match(await card.textContent(), /running/);
  const [[experiment]] = sql("SELECT id FROM experiments WHERE status = 'running'");

  // Traffic as the experiment records it: 120 tickets per arm, A dearer,
  // thumbs-up about the same.
  sql(`
    INSERT INTO tickets (id) SELECT md5('exp-t-' || g)::uuid FROM generate_series(1, 240) g;
    INSERT INTO llm_calls (id, request_id, ticket_id, kind, model, provider, input_tokens, output_tokens, cost_micros, latency_ms, status, experiment_id, variant)
      SELECT md5('exp-c-' || g)::uuid, md5('exp-r-' || g)::uuid, md5('exp-t-' || g)::uuid, 'generate',
        CASE WHEN g % 2 = 0 THEN 'fake/premium' ELSE 'local/smollm2-budget' END, 'openai', 900, 120,
        CASE WHEN g % 2 = 0 THEN 4000 + (g % 9) * 150 ELSE 1500 + (g % 7) * 120 END, 900, 'ok',
        '${experiment}', CASE WHEN g % 2 = 0 THEN 'A' ELSE 'B' END
      FROM generate_series(1, 240) g;
    INSERT INTO messages (id, ticket_id, role, content, request_id)
      SELECT md5('exp-m-' || g)::uuid, md5('exp-t-' || g)::uuid, 'assistant', 'answer', md5('exp-r-' || g)::uuid
      FROM generate_series(1, 240) g WHERE g % 3 = 0;
    INSERT INTO feedback (id, message_id, ticket_id, request_id, rating)
      SELECT md5('exp-f-' || g)::uuid, md5('exp-m-' || g)::uuid, md5('exp-t-' || g)::uuid, md5('exp-r-' || g)::uuid,
        CASE WHEN g % 5 = 0 THEN -1 ELSE 1 END
      FROM generate_series(1, 240) g WHERE g % 3 = 0;`);
  await admin.reload();
  await card.waitFor();
  const readout = await card.locator('[data-testid=readout]').textContent();
  assert.match(readout, /^B costs \d+% less per ticket than A \(p < 0\.001\); no significant change in thumbs-up \(p = [01]\.\d+\)\.$/);
  assert.match(await card.locator('[data-testid=arm-A]').textContent(), /120/);
  assert.match(await card.locator('[data-testid=arm-B]').textContent(), /120/);
  await admin.screenshot({ path: SHOTS + 'admin-experiment.png', fullPage: true });
  // Stop it, so the rest of the tests route normally.
  await card.getByRole('button', { name: 'Stop' }).click();
  await admin.waitForFunction(() => /stopped/.test(document.querySelector('[data-testid=experiment]')?.textContent ?? ''));
  await context.close();
});

test('an alert rule fires: the banner shows it and its webhook is delivered', async () => {
  const context = await browser.newContext();
  const admin = await adminLogin(context);
  await admin.goto(BASE + '/admin/alerts');
  await admin.fill('[data-testid=rule-name]', 'Any spend today');
  await admin.selectOption('[data-testid=rule-metric]', 'spend_day');
  await admin.fill('[data-testid=rule-threshold]', '0.000001');
  await admin.fill('[data-testid=rule-webhook]', 'http://127.0.0.1:3199/webhook');
  await admin.click('[data-testid=rule-create]');
  await admin.locator('[data-testid=rules] tbody tr', { hasText: 'Any spend today' }).waitFor();
  // Earlier tests spent money on the fake premium model; the rule fires on
  // the next check (every 2 s in the test config).
  let hooks = [];
  for (let i = 0; i < 50 && hooks.length === 0; i++) {
    await admin.waitForTimeout(200);
    hooks = await (await fetch('http://127.0.0.1:3199/webhook-log')).json();
  }
  assert.equal(hooks.length, 1, 'one webhook for one firing');
  assert.equal(hooks[0].rule, 'Any spend today');
  assert.equal(hooks[0].metric, 'spend_day');
  assert.ok(hooks[0].value > 0.000001);
  await admin.reload();
  await admin.locator('[data-testid=alert-banner]').waitFor();
  assert.match(await admin.locator('[data-testid=alert-banner]').textContent(), /Any spend today/);
  for (let i = 0; ; i++) {
    await admin.locator('[data-testid=alert-history]').waitFor();
    if (/delivered/.test(await admin.locator('[data-testid=alert-history]').textContent())) break;
    assert.ok(i < 20, 'the delivery was not recorded');
    await admin.waitForTimeout(500);
    await admin.reload();
  }
  await admin.screenshot({ path: SHOTS + 'admin-alerts.png', fullPage: true });
  // Still firing later: no second webhook while it stays open.
  await admin.waitForTimeout(5_000);
  assert.equal((await (await fetch('http://127.0.0.1:3199/webhook-log')).json()).length, 1);
  sql("UPDATE alert_rules SET enabled = false");
  await context.close();
});
