"""The official `openai` package, unchanged, against Triage's /v1.

Run by end2end/run.sh with TRIAGE_E2E_URL (the server) and TRIAGE_E2E_KEY
(a key it created with `triage keys create`)."""

import os
import unittest

import openai
from openai import OpenAI

BASE = os.environ["TRIAGE_E2E_URL"].rstrip("/") + "/v1"
KEY = os.environ["TRIAGE_E2E_KEY"]


class OpenAIClientTest(unittest.TestCase):
    def setUp(self):
        self.client = OpenAI(base_url=BASE, api_key=KEY, max_retries=0, timeout=120)

    def test_auto_non_streaming_reports_the_model_used_and_usage(self):
        r = self.client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "What are your opening hours?"}], max_tokens=24
        )
        self.assertEqual(r.object, "chat.completion")
        self.assertTrue(r.model.startswith("local/smollm2-"), r.model)  # routed: a real model name, not "auto"
        self.assertTrue(r.choices[0].message.content.strip())
        self.assertGreater(r.usage.prompt_tokens, 0)
        self.assertGreater(r.usage.completion_tokens, 0)
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens)

    def test_auto_streaming_yields_text_then_usage(self):
        stream = self.client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "How do I reset my password?"}],
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, models, usage = "", set(), None
        for chunk in stream:
            models.add(chunk.model)
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.usage:
                usage = chunk.usage
        self.assertTrue(text.strip())
        self.assertEqual(len(models), 1, models)
        self.assertTrue(models.pop().startswith("local/smollm2-"))
        self.assertIsNotNone(usage)
        self.assertGreater(usage.completion_tokens, 0)

    def test_a_named_model_and_the_raw_headers(self):
        raw = self.client.chat.completions.with_raw_response.create(
            model="fake/premium", messages=[{"role": "user", "content": "Why does my build fail?"}]
        )
        r = raw.parse()
        self.assertEqual(r.model, "fake/premium")
        self.assertEqual(r.usage.prompt_tokens, 1234)
        # 1234 × $3 + 56 × $15 per million tokens = 4542 micro-dollars
        self.assertEqual(raw.headers["x-triage-cost-micros"], "4542")
        self.assertEqual(raw.headers["x-triage-model"], "fake/premium")
        self.assertTrue(raw.headers["x-triage-request-id"])

    def test_models_lists_auto(self):
        ids = [m.id for m in self.client.models.list()]
        self.assertEqual(ids[0], "auto")
        self.assertIn("fake/premium", ids)

    def test_errors_raise_the_clients_own_exceptions(self):
        with self.assertRaises(openai.NotFoundError):
            self.client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "hi"}])
        with self.assertRaises(openai.BadRequestError):
            self.client.chat.completions.create(model="auto", messages=[])
        bad = OpenAI(base_url=BASE, api_key="tr-wrong", max_retries=0)
        with self.assertRaises(openai.AuthenticationError):
            bad.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])


if __name__ == "__main__":
    unittest.main(verbosity=2)
