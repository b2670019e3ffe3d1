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

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', async () => {
    if (req.url === '/webhook' && req.method === 'POST') {
      webhooks.push(JSON.parse(body));
      res.writeHead(204).end();
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
    const pieces = body.includes('XSS-PROBE') ? HOSTILE : ANSWER;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (obj) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
    send({ choices: [{ index: 0, delta: { role: 'assistant', content: '' } }] });
    for (const piece of pieces) {
      if (pieceDelay > 0) await new Promise((r) => setTimeout(r, pieceDelay));
      send({ choices: [{ index: 0, delta: { content: piece } }] });
    }
    send({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
    send({ choices: [], usage: USAGE });
    res.end('data: [DONE]\n\n');
  });
});
server.listen(port, '127.0.0.1', () => console.log(`fake upstream on 127.0.0.1:${port}`));
