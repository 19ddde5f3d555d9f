// The official `openai` npm client (v6) against a running `sharpen serve`. Run by NodeClientTests.cs, which starts the
// server and passes: SHARPEN_BASE_URL (…/v1), SHARPEN_MODEL, SHARPEN_EXPECTED_COMPLETION (the in-process engine's greedy
// completion of SHARPEN_PROMPT with 16 new tokens). Any failed assertion exits non-zero.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.SHARPEN_BASE_URL;
const model = process.env.SHARPEN_MODEL;
const prompt = process.env.SHARPEN_PROMPT;
const expected = process.env.SHARPEN_EXPECTED_COMPLETION;
assert.ok(baseURL && model && prompt && expected !== undefined, 'SHARPEN_BASE_URL, SHARPEN_MODEL, SHARPEN_PROMPT, SHARPEN_EXPECTED_COMPLETION must be set');
const client = new OpenAI({ baseURL, apiKey: 'test-key', maxRetries: 0 });

// Models.
const models = [];
for await (const m of client.models.list()) models.push(m.id);
assert.deepEqual(models, [model]);

// Completions: greedy text equals the in-process engine's.
const completion = await client.completions.create({ model, prompt, max_tokens: 16, temperature: 0 });
assert.equal(completion.object, 'text_completion');
assert.equal(completion.choices[0].text, expected);
assert.ok(['stop', 'length'].includes(completion.choices[0].finish_reason));

// Completions, streamed: the pieces add up to the same text.
let streamed = '';
for await (const chunk of await client.completions.create({ model, prompt, max_tokens: 16, temperature: 0, stream: true })) {
  streamed += chunk.choices[0]?.text ?? '';
}
assert.equal(streamed, expected);

// Chat, whole and streamed (with usage in the last chunk).
const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Count to three.' }];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 2 });
const answer = chat.choices[0].message.content;
assert.equal(chat.choices[0].message.role, 'assistant');
assert.equal(chat.choices[0].logprobs.content.length, chat.usage.completion_tokens);
assert.equal(chat.usage.total_tokens, chat.usage.prompt_tokens + chat.usage.completion_tokens);
for (const t of chat.choices[0].logprobs.content) {
  assert.ok(t.logprob <= 0 && t.top_logprobs.length === 2 && t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
}
let chatStreamed = '', usage = null, finish = null;
const stream = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
for await (const chunk of stream) {
  chatStreamed += chunk.choices[0]?.delta?.content ?? '';
  finish = chunk.choices[0]?.finish_reason ?? finish;
  usage = chunk.usage ?? usage;
}
assert.equal(chatStreamed, answer);
assert.equal(finish, chat.choices[0].finish_reason);
assert.equal(usage.completion_tokens, chat.usage.completion_tokens);

// Errors arrive as the client's typed errors.
await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages }), (e) => e instanceof OpenAI.NotFoundError && e.status === 404);
await assert.rejects(client.chat.completions.create({ model, messages: [{ role: 'wizard', content: 'hi' }] }),
  (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.code === 'invalid_role');
await assert.rejects(client.chat.completions.create({ model, messages, max_tokens: 100000 }),
  (e) => e instanceof OpenAI.UnprocessableEntityError && e.status === 422 && e.code === 'context_length_exceeded');

console.log('openai-node client test passed');
