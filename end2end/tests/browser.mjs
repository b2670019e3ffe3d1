// Shared browser setup: Debian's chromium driven by playwright-core.
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
