// A closed-loop load on /v1/chat/completions: CLIENTS concurrent clients for
// DURATION seconds, each sending the next request when the last one ends.
// Prints a JSON summary (statuses, latency percentiles) and writes every
// answered request id to IDS_FILE, so the caller can check each one has its
// llm_calls row.
import { writeFileSync } from 'node:fs';

const url = (process.env.TRIAGE_URL ?? 'http://127.0.0.1:3300') + '/v1/chat/completions';
const clients = Number(process.env.CLIENTS ?? 16);
const seconds = Number(process.env.DURATION ?? 30);
const idsFile = process.env.IDS_FILE;
// This share of requests streams (read to the end; a stream that ends in
// an OpenAI error event counts as a clean failure, one cut short as broken).
const streamShare = Number(process.env.STREAM_SHARE ?? 0);
const questions = [
  'What are your opening hours?',
  'How do I reset my password?',
  'My invoice shows a charge I do not recognise, can you explain it?',
  'Traceback (most recent call last): File "app.py", line 3 ValueError: bad value. Why does my deploy crash?',
];

const statuses = {};
const latencies = [];
const ids = [];
const errors = {};
let sent = 0;
const deadline = Date.now() + seconds * 1000;

async function client(n) {
  let i = n;
  while (Date.now() < deadline) {
    const question = `${questions[i++ % questions.length]} (#${n}-${i})`;
    const started = performance.now();
    sent++;
    const stream = Math.random() < streamShare;
    try {
      const r = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'auto', stream, messages: [{ role: 'user', content: question }] }),
        signal: AbortSignal.timeout(30_000),
      });
      const body = await r.text();
      latencies.push(performance.now() - started);
      if (r.status === 200 && stream) {
        const done = body.trimEnd().endsWith('data: [DONE]');
        const failed = /^data: \{"error"/m.test(body);
        const kind = !done ? 'stream broken' : failed ? 'stream error event' : '200';
        statuses[kind] = (statuses[kind] ?? 0) + 1;
        if (kind === '200') ids.push(r.headers.get('x-triage-request-id'));
        else if (failed) {
          const message = (() => { try { return JSON.parse(body.match(/^data: (\{"error".*)$/m)[1]).error.message; } catch { return '?'; } })();
          errors[`stream ${message}`] = (errors[`stream ${message}`] ?? 0) + 1;
        }
        continue;
      }
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status === 200) {
        ids.push(r.headers.get('x-triage-request-id'));
      } else {
        const message = (() => { try { return JSON.parse(body).error.message; } catch { return body.slice(0, 80); } })();
        errors[`${r.status} ${message}`] = (errors[`${r.status} ${message}`] ?? 0) + 1;
      }
    } catch (e) {
      statuses.network = (statuses.network ?? 0) + 1;
      errors[`network ${e.name}`] = (errors[`network ${e.name}`] ?? 0) + 1;
    }
  }
}

await Promise.all(Array.from({ length: clients }, (_, n) => client(n)));
latencies.sort((a, b) => a - b);
const pct = (p) => latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]) : null;
if (idsFile) writeFileSync(idsFile, ids.join('\n') + '\n');
console.log(JSON.stringify({ sent, statuses, errors, p50_ms: pct(0.5), p99_ms: pct(0.99), answered: ids.length }));
