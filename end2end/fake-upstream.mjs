// A fake OpenAI-compatible provider for the browser tests: answers every
// chat completion with a fixed streamed text and fixed usage, so the test can
// check the page shows it and the recorded cost is usage × catalog price.
import http from 'node:http';

const port = Number(process.env.FAKE_UPSTREAM_PORT ?? 3199);
export const ANSWER = ['The traceback ', 'shows a ValueError ', 'raised in app.py ', 'on line 3.'];
export const USAGE = { prompt_tokens: 1234, completion_tokens: 56, prompt_tokens_details: { cached_tokens: 0 } };

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', async () => {
    if (req.method !== 'POST' || !req.url.endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'not found' } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (obj) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
    send({ choices: [{ index: 0, delta: { role: 'assistant', content: '' } }] });
    for (const piece of ANSWER) {
      await new Promise((r) => setTimeout(r, 60));
      send({ choices: [{ index: 0, delta: { content: piece } }] });
    }
    send({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
    send({ choices: [], usage: USAGE });
    res.end('data: [DONE]\n\n');
  });
});
server.listen(port, '127.0.0.1', () => console.log(`fake upstream on 127.0.0.1:${port}`));
