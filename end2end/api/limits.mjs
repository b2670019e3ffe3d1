// Two Triage instances, one database, one key with a requests-per-minute
// limit: hammer both at once and check the number admitted matches the
// token bucket (capacity + refill over the run) within 1%, and that every
// 429 carries Retry-After.
//   TRIAGE_E2E_URLS="http://127.0.0.1:3100 http://127.0.0.1:3101" TRIAGE_E2E_LIMIT_KEY=… RPM=120
import assert from 'node:assert/strict';

const urls = process.env.TRIAGE_E2E_URLS.split(/\s+/).filter(Boolean);
const key = process.env.TRIAGE_E2E_LIMIT_KEY;
const rpm = Number(process.env.RPM ?? 120);
const total = Number(process.env.REQUESTS ?? 600);
const concurrency = Number(process.env.CONCURRENCY ?? 32);

const body = JSON.stringify({ model: 'fake/premium', messages: [{ role: 'user', content: 'ping' }] });
let next = 0;
const results = [];
const started = performance.now();
let lastSent = started;
async function worker(w) {
  while (next < total) {
    const i = next++;
    lastSent = performance.now();
    const url = urls[i % urls.length] + '/v1/chat/completions';
    const r = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body,
    });
    const text = await r.text();
    results.push({ status: r.status, retryAfter: r.headers.get('retry-after'), text, instance: i % urls.length });
  }
}
await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
// the bucket refilled for as long as requests kept arriving
const seconds = (lastSent - started) / 1000;

const ok = results.filter((r) => r.status === 200);
const limited = results.filter((r) => r.status === 429);
const other = results.filter((r) => r.status !== 200 && r.status !== 429);
assert.equal(other.length, 0, `unexpected statuses: ${JSON.stringify(other.slice(0, 3))}`);
for (const r of limited) {
  assert.ok(Number(r.retryAfter) >= 1, `429 without Retry-After: ${JSON.stringify(r)}`);
  assert.equal(JSON.parse(r.text).error.code, 'rate_limit_exceeded');
}
// a full bucket of `rpm`, refilled at rpm/60 per second while the run lasts
const expected = rpm + (rpm / 60) * seconds;
const perInstance = urls.map((_, n) => ok.filter((r) => r.instance === n).length);
console.log(
  `limits: ${results.length} requests in ${seconds.toFixed(2)} s over ${urls.length} instances; ` +
    `admitted ${ok.length} (per instance ${perInstance.join(' + ')}), expected ${expected.toFixed(1)} ` +
    `(${rpm}/min bucket + refill); 429s ${limited.length}, all with Retry-After`,
);
assert.ok(perInstance.every((n) => n > 0), 'both instances admitted some');
assert.ok(Math.abs(ok.length - expected) <= Math.max(1, expected * 0.01), `admitted ${ok.length}, expected ${expected.toFixed(1)} ± 1%`);
