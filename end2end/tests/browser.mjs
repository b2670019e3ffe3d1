// Shared browser setup: Debian's chromium driven by playwright-core.
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';

export const BASE = process.env.TRIAGE_E2E_URL ?? 'http://127.0.0.1:3000';
export const SHOTS = new URL('../screenshots/', import.meta.url).pathname;

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/** Opens a page and waits until the app has hydrated (clicks before that are lost). */
export async function openChat(context, path = '/') {
  const page = await context.newPage();
  await page.goto(BASE + path);
  await page.waitForSelector('[data-hydrated="true"]', { timeout: 30_000 });
  return page;
}

/** Runs one SQL statement on the test database; returns its rows as arrays of strings. */
export function sql(query) {
  const out = execFileSync('psql', [process.env.TRIAGE_E2E_DATABASE_URL, '-XtA', '-F', '\t', '-c', query], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.length > 0).map((l) => l.split('\t'));
}

/** Waits until the newest answer has finished streaming; returns its locator. */
export async function lastAnswerDone(page, timeout = 120_000) {
  await page.waitForFunction(() => {
    const a = [...document.querySelectorAll('article.assistant')].pop();
    return a && !/streaming|waiting/.test(a.className);
  }, null, { timeout });
  return page.locator('article.assistant').last();
}

export const ADMIN = { username: 'admin', password: 'e2e admin password' };

/** Signs in to the dashboard in this browser context. */
export async function adminLogin(context) {
  const page = await context.newPage();
  await page.goto(BASE + '/admin/login');
  await page.fill('#username', ADMIN.username);
  await page.fill('#password', ADMIN.password);
  await Promise.all([page.waitForURL((u) => u.pathname === '/admin'), page.click('button[type=submit]')]);
  return page;
}
