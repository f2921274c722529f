// The retry policy of the page's requests: afterFailure alone, then Segmenter over a stubbed fetch (the real
// postJson turning each HTTP answer into an ApiError, as in the browser).
import assert from 'node:assert/strict';
import {afterEach, test} from 'node:test';

import {ApiError} from '../../web/js/api.js';
import {Segmenter, afterFailure} from '../../web/js/session.js';
import {NEW_SESSION, NEW_SESSION_HEADER, SESSION_HEADER} from '../../web/js/sticky-session.js';

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
  assert.deepEqual(afterFailure(NOT_FOUND, {byId: true, retries: 0}), {resend: true, reopen: false});
  assert.equal(afterFailure(NOT_FOUND, {byId: false, retries: 2}), null);
  const otherNotFound = new ApiError('no such route', {status: 404, code: 'http_error'});
  assert.equal(afterFailure(otherNotFound, {byId: true, retries: 2}), null);
});

test('a refused session is opened again with the image, but only a session the request named', () => {
  const expired = new ApiError('session gone', {status: 400, code: 'session_expired'});
  assert.deepEqual(afterFailure(expired, {byId: true, retries: 0, inSession: true}), {resend: true, reopen: true});
  assert.deepEqual(afterFailure(expired, {byId: false, retries: 2, inSession: true}), {resend: true, reopen: true});
  assert.equal(afterFailure(expired, {byId: true, retries: 2, inSession: false}), null);
  assert.deepEqual(afterFailure(NOT_FOUND, {byId: true, retries: 2, inSession: true}), {resend: true, reopen: true});
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

/** fetch answering each request with the next of `replies`: [status, body, headers?]; session closes (the
 * {"requestType": "CLOSE"} the page sends without waiting) are answered 200 and recorded apart, in `sent.closed`. */
function answering(...replies) {
  const sent = [];
  sent.closed = [];
  globalThis.fetch = async (url, init) => {
    const body = JSON.parse(init.body);
    const session = init.headers[SESSION_HEADER] ?? null;
    if (body.requestType === 'CLOSE') {
      sent.closed.push({session, keepalive: init.keepalive, url});
      return new Response('{}', {status: 200, headers: {'Content-Type': 'application/json'}});
    }
    sent.push({url, body, session});
    const [status, answer, headers = {}] = replies.shift();
    return new Response(JSON.stringify(answer), {status, headers: {'Content-Type': 'application/json', ...headers}});
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

// --- Segmenter with a SageMaker session (the endpoint names one in its answer)

const opens = (id) => ({[NEW_SESSION_HEADER]: `${id}; Expires=${new Date(Date.now() + 1200_000).toISOString()
  .replace(/\.\d+Z$/, 'Z')}`});

test('a session opened with the image is sent with every later request about it', async () => {
  const sent = answering([200, ANSWER, opens('s-1')], [200, ANSWER], [200, ANSWER]);
  const {session, logged} = segmenter();
  await session.run({action: 'langsam'});
  await session.run({action: 'sam2'});
  await session.run({action: 'sam2'});
  assert.deepEqual(sent.map((s) => [Object.keys(s.body).sort().join(), s.session]), [
    ['action,image', NEW_SESSION], ['action,image_id', 's-1'], ['action,image_id', 's-1']]);
  assert.deepEqual(logged.map((row) => row.sentAs), ['image · new session', 'image_id · session', 'image_id · session']);
  assert.deepEqual(sent.closed, []);
});

test('a new image closes the old session (keepalive) and opens its own', async () => {
  const sent = answering([200, ANSWER, opens('s-1')], [200, ANSWER, opens('s-2')]);
  const {session} = segmenter();
  await session.run({action: 'sam2'});
  session.setImage({payload: {image: 'b3RoZXI='}, sent: {width: 4, height: 3}});
  assert.deepEqual(sent.closed, [{session: 's-1', keepalive: true, url: 'http://endpoint.test/invocations'}]);
  await session.run({action: 'sam2'});
  assert.deepEqual(sent.map((s) => [s.body.image, s.session]), [['aW1hZ2U=', NEW_SESSION], ['b3RoZXI=', NEW_SESSION]]);
  session.endSession();  // the page going away
  assert.deepEqual(sent.closed.map((c) => c.session), ['s-1', 's-2']);
});

test('session_expired from the endpoint: the image again, in a new session', async () => {
  const sent = answering([200, ANSWER, opens('s-1')], error(400, 'session_expired'), [200, ANSWER, opens('s-2')],
                         [200, ANSWER]);
  const {session, logged} = segmenter();
  await session.run({action: 'sam2'});
  assert.deepEqual(await session.run({action: 'sam2', x: 2}), ANSWER);
  await session.run({action: 'sam2', x: 3});
  assert.deepEqual(sent.map((s) => [Object.keys(s.body).includes('image'), s.session]),
                   [[true, NEW_SESSION], [false, 's-1'], [true, NEW_SESSION], [false, 's-2']]);
  assert.equal(logged[1].note, 'image sent again, new session');
  assert.deepEqual(sent.closed, []);  // the endpoint said it is gone: nothing to close
});

test('an instance that lost the image (404 by id in a session): closed, the image again in a new session', async () => {
  const sent = answering([200, ANSWER, opens('s-1')], error(404, 'not_found'), [200, ANSWER, opens('s-2')]);
  const {session} = segmenter();
  await session.run({action: 'sam2'});
  await session.run({action: 'sam2'});
  assert.deepEqual(sent.map((s) => s.session), [NEW_SESSION, 's-1', NEW_SESSION]);
  assert.deepEqual(sent.closed.map((c) => c.session), ['s-1']);
  assert.equal(session.session.id, 's-2');
});

test('an endpoint without sessions: NEW_SESSION once, then no session header at all', async () => {
  const sent = answering([200, ANSWER], [200, ANSWER], [200, ANSWER]);
  const {session} = segmenter();
  await session.run({action: 'sam2'});
  await session.run({action: 'sam2'});
  session.setImage({payload: {image: 'b3RoZXI='}, sent: {width: 4, height: 3}});
  await session.run({action: 'sam2'});
  assert.deepEqual(sent.map((s) => s.session), [NEW_SESSION, null, null]);
  assert.deepEqual(sent.closed, []);
});

test('a session opened by an answer about an image no longer shown is closed at once', async () => {
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  const sent = answering([200, ANSWER, opens('late')]);
  const answer = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    if (JSON.parse(init.body).requestType !== 'CLOSE') await gate;  // the answer arrives after the image changed
    return answer(url, init);
  };
  const {session} = segmenter();
  const pending = session.run({action: 'sam2'});
  session.setImage({payload: {image: 'b3RoZXI='}, sent: {width: 4, height: 3}});
  release();
  assert.equal(await pending, null);
  assert.deepEqual(sent.closed.map((c) => c.session), ['late']);
  assert.equal(session.session.id, null);
});

test('a session is closed where it was opened, even after the endpoint setting changed', async () => {
  const sent = answering([200, ANSWER, opens('s-1')]);
  let url = 'http://old.test/invocations';
  const session = new Segmenter(() => url, {add: () => {}}, () => {});
  session.setImage({payload: {image: 'aW1hZ2U='}, sent: {width: 4, height: 3}});
  await session.run({action: 'sam2'});
  url = 'http://new.test/invocations';  // the settings dialog saved another endpoint, then told the Segmenter
  session.endpointChanged();
  assert.deepEqual(sent.closed, [{session: 's-1', keepalive: true, url: 'http://old.test/invocations'}]);
});

test('another endpoint: its session support is found out again', async () => {
  const sent = answering([200, ANSWER], [200, ANSWER, opens('s-9')]);
  const {session} = segmenter();
  await session.run({action: 'sam2'});  // no session from this one
  session.endpointChanged();
  await session.run({action: 'sam2'});
  assert.deepEqual(sent.map((s) => [Object.keys(s.body).includes('image'), s.session]),
                   [[true, NEW_SESSION], [true, NEW_SESSION]]);
});
