// A fake OpenAI-compatible provider for the browser tests: answers every
// chat completion with a fixed streamed text and fixed usage, so the test can
// check the page shows it and the recorded cost is usage × catalog price.
import http from 'node:http';

const port = Number(process.env.FAKE_UPSTREAM_PORT ?? 3199);
// Pause between streamed pieces (the load and fault scripts set 0).
const pieceDelay = Number(process.env.FAKE_UPSTREAM_DELAY_MS ?? 60);
export const ANSWER = ['The traceback ', 'shows a ValueError ', 'raised in app.py ', 'on line 3.'];
// A question containing XSS-PROBE gets an answer full of markup a browser
// must not run: the widget has to render it inert.
export const HOSTILE = ['Here you go: <img src=x onerror="window.__xss=1"> ', '[click me](javascript:window.__xss=2) ',
  '<script>window.__xss=3</script>\n\n```sh\necho copied\n```\n'];
export const USAGE = { prompt_tokens: 1234, completion_tokens: 56, prompt_tokens_details: { cached_tokens: 0 } };

// Alert webhooks land here; the browser test reads them back.
const webhooks = [];

// Fault storms (bench/faults.sh storm): this share of chat requests fails,
// each in one of these ways, picked at random. /stats counts what was
// received, so every attempt can be matched with its llm_calls row.
const faultRate = Number(process.env.FAKE_UPSTREAM_FAULT_RATE ?? 0);
const FAULTS = ['500', '503', '429', 'reset', 'hang', 'cut', 'garbage', 'empty'];
const stats = { received: 0, ok: 0, faults: Object.fromEntries(FAULTS.map((f) => [f, 0])) };
const hangMs = Number(process.env.FAKE_UPSTREAM_HANG_MS ?? 2000);

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', async () => {
    if (req.url === '/webhook' && req.method === 'POST') {
      webhooks.push(JSON.parse(body));
      res.writeHead(204).end();
      return;
    }
    if (req.url === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
      return;
    }
    if (req.url === '/webhook-log') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(webhooks));
      return;
    }
    if (req.method !== 'POST' || !req.url.endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'not found' } }));
      return;
    }
    stats.received++;
    const fault = Math.random() < faultRate ? FAULTS[Math.floor(Math.random() * FAULTS.length)] : null;
    if (fault) stats.faults[fault]++; else stats.ok++;
    const json = { 'content-type': 'application/json' };
    const fail = (status, message, headers = {}) =>
      res.writeHead(status, { ...json, ...headers }).end(JSON.stringify({ error: { message, type: 'server_error' } }));
    switch (fault) {
      case '500': return fail(500, 'internal error');
      case '503': return fail(503, 'overloaded');
      case '429': return fail(429, 'slow down', { 'retry-after': '0' });
      case 'reset': return req.socket.destroy();
      case 'hang': await new Promise((r) => setTimeout(r, hangMs)); break;
      case 'empty': return res.writeHead(200, { 'content-type': 'text/event-stream' }).end();
      default:
    }
    const pieces = body.includes('XSS-PROBE') ? HOSTILE : ANSWER;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (obj) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
    send({ choices: [{ index: 0, delta: { role: 'assistant', content: '' } }] });
    if (fault === 'garbage') return res.end('data: {"choices": [{"delta": {"content": \n\n');
    for (const [i, piece] of pieces.entries()) {
      if (pieceDelay > 0) await new Promise((r) => setTimeout(r, pieceDelay));
      send({ choices: [{ index: 0, delta: { content: piece } }] });
      // cut mid-answer: the connection drops with no finish and no [DONE]
      if (fault === 'cut' && i === 1) {
        await new Promise((r) => setTimeout(r, 20)); // let the pieces so far arrive
        return req.socket.destroy();
      }
    }
    send({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
    send({ choices: [], usage: USAGE });
    res.end('data: [DONE]\n\n');
  });
});
server.listen(port, '127.0.0.1', () => console.log(`fake upstream on 127.0.0.1:${port}`));
