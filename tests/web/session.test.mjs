// The retry policy of the page's requests: afterFailure alone, then Segmenter over a stubbed fetch (the real
// postJson turning each HTTP answer into an ApiError, as in the browser).
import assert from 'node:assert/strict';
import {afterEach, test} from 'node:test';

import {ApiError} from '../../web/js/api.js';
import {Segmenter, afterFailure} from '../../web/js/session.js';

const NOT_FOUND = new ApiError('no image with that id', {status: 404, code: 'not_found'});
const RESTARTING = new ApiError('the model is restarting', {status: 503, code: 'model_restarting', retryAfterS: 5});

test('a 503 that says when is retried after that wait while retries last', () => {
  assert.deepEqual(afterFailure(RESTARTING, {byId: true, retries: 2}), {waitS: 5});
  assert.deepEqual(afterFailure(RESTARTING, {byId: false, retries: 1}), {waitS: 5});
  assert.equal(afterFailure(RESTARTING, {byId: false, retries: 0}), null);
});

test('the wait is capped at 15 s', () => {
  const overloaded = new ApiError('queue full', {status: 503, code: 'overloaded', retryAfterS: 120});
  assert.deepEqual(afterFailure(overloaded, {byId: false, retries: 2}), {waitS: 15});
});

test('an unknown image_id is sent again with the image, but only when it was sent by id', () => {
  assert.deepEqual(afterFailure(NOT_FOUND, {byId: true, retries: 0}), {resend: true});
  assert.equal(afterFailure(NOT_FOUND, {byId: false, retries: 2}), null);
  const otherNotFound = new ApiError('no such route', {status: 404, code: 'http_error'});
  assert.equal(afterFailure(otherNotFound, {byId: true, retries: 2}), null);
});

test('anything else fails at once', () => {
  for (const error of [new ApiError('bad x', {status: 400, code: 'invalid_request'}),
                       new ApiError('unreachable'),  // status 0, network
                       new ApiError('no retry-after', {status: 503, code: 'not_ready'}),
                       new Error('a bug')]) {
    assert.equal(afterFailure(error, {byId: true, retries: 2}), null, error.message);
  }
});

// --- Segmenter over a stubbed fetch

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

function answering(...replies) {
  const sent = [];
  globalThis.fetch = async (url, init) => {
    sent.push({url, body: JSON.parse(init.body)});
    const [status, body] = replies.shift();
    return new Response(JSON.stringify(body), {status, headers: {'Content-Type': 'application/json'}});
  };
  return sent;
}

function segmenter() {
  const logged = [];
  const waits = [];
  const session = new Segmenter(() => 'http://endpoint.test/invocations', {add: (row) => logged.push(row)},
                                (seconds) => waits.push(seconds));
  session.setImage({payload: {image: 'aW1hZ2U='}, sent: {width: 4, height: 3}});
  return {session, logged, waits};
}

const ANSWER = {image: {id: 'img-1', width: 4, height: 3}, masks: []};
const error = (status, code, extra = {}) => [status, {error: {code, message: `${code} here`, ...extra}}];

test('the first request carries the image, the next its image_id', async () => {
  const sent = answering([200, ANSWER], [200, ANSWER]);
  const {session} = segmenter();
  assert.deepEqual(await session.run({action: 'sam2', x: 1, y: 1}), ANSWER);
  await session.run({action: 'sam2', x: 2, y: 2});
  assert.deepEqual(sent.map((s) => s.body), [{action: 'sam2', x: 1, y: 1, image: 'aW1hZ2U='},
                                             {action: 'sam2', x: 2, y: 2, image_id: 'img-1'}]);
});

test('a 404 not_found on an image_id re-sends the image, once', async () => {
  const sent = answering([200, ANSWER], error(404, 'not_found'), [200, ANSWER]);
  const {session, logged} = segmenter();
  await session.run({action: 'sam2'});
  assert.deepEqual(await session.run({action: 'sam2'}), ANSWER);
  assert.deepEqual(sent.map((s) => Object.keys(s.body).sort()), [['action', 'image'], ['action', 'image_id'],
                                                                 ['action', 'image']]);
  assert.equal(logged[1].note, 'image sent again');
});

test('a 404 not_found for the image itself fails', async () => {
  answering(error(404, 'not_found'));
  const {session} = segmenter();
  await assert.rejects(session.run({action: 'sam2'}), (e) => e instanceof ApiError && e.status === 404);
});

test('a 503 with retry_after_s is retried after telling the page, twice at most', async () => {
  const sent = answering(error(503, 'model_restarting', {retry_after_s: 0.01}),
                         error(503, 'model_restarting', {retry_after_s: 0.01}),
                         error(503, 'model_restarting', {retry_after_s: 0.01}));
  const {session, waits, logged} = segmenter();
  await assert.rejects(session.run({action: 'langsam'}), (e) => e.code === 'model_restarting');
  assert.equal(sent.length, 3);  // the request and two retries
  assert.deepEqual(waits, [0.01, 0.01]);
  assert.deepEqual(logged.map((row) => row.note), ['retried after 0.01 s', 'retried after 0.01 s', '']);
});

test('a retried request that then answers resolves to its answer', async () => {
  answering(error(503, 'overloaded', {retry_after_s: 0.01}), [200, ANSWER]);
  const {session} = segmenter();
  assert.deepEqual(await session.run({action: 'sam2'}), ANSWER);
});

test('an answer about an image no longer shown is dropped', async () => {
  answering(error(503, 'overloaded', {retry_after_s: 0.05}), [200, ANSWER]);
  const {session, waits} = segmenter();
  const pending = session.run({action: 'sam2'});
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(waits, [0.05]);
  session.setImage({payload: {image: 'b3RoZXI='}, sent: {width: 4, height: 3}});
  assert.equal(await pending, null);
});
