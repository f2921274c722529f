// The page's SageMaker session as a state machine (web/js/sticky-session.js): what each request sends, what each
// answer changes, on a clock the test moves.
import assert from 'node:assert/strict';
import {test} from 'node:test';

import {CLOSED_SESSION_HEADER, NEW_SESSION, NEW_SESSION_HEADER, StickySession, parseNewSession}
  from '../../web/js/sticky-session.js';

const T0 = Date.parse('2026-12-06T21:00:00Z');
const OPENED = 'a1b2-c3; Expires=2026-12-06T21:20:00Z';  // the router's format: 20 min later

function clock(start = T0) {
  const now = {t: start};
  return {now, session: new StickySession(() => now.t)};
}

const headers = (values) => (name) => values[name] ?? null;

test('parseNewSession reads botocore\'s format and nothing looser', () => {
  assert.deepEqual(parseNewSession(OPENED), {id: 'a1b2-c3', expiresAt: Date.parse('2026-12-06T21:20:00Z')});
  for (const bad of [null, '', 'a1b2', 'a1b2; Expires=tomorrow', '-a; Expires=2026-12-06T21:20:00Z',
                     'a--b;Expires=2026-12-06T21:20:00Z', 'a b; Expires=2026-12-06T21:20:00Z',
                     'a; Expires=2026-12-06T21:20:00.5Z', `${'a'.repeat(257)}; Expires=2026-12-06T21:20:00Z`]) {
    assert.equal(parseNewSession(bad), null, bad);
  }
});

test('the first request sends the image with NEW_SESSION; the answer opens the session', () => {
  const {session} = clock();
  assert.deepEqual(session.plan(false), {sendImage: true, header: NEW_SESSION});
  session.answered(NEW_SESSION, headers({[NEW_SESSION_HEADER]: OPENED}));
  assert.equal(session.open, true);
  assert.deepEqual(session.plan(true), {sendImage: false, header: 'a1b2-c3'});
  assert.deepEqual(session.plan(false), {sendImage: true, header: 'a1b2-c3'});  // no id yet: image, same session
});

test('an endpoint that names no session gets no session header again', () => {
  const {session} = clock();
  session.answered(NEW_SESSION, headers({}));
  assert.equal(session.supported, false);
  assert.deepEqual(session.plan(true), {sendImage: false, header: null});
  assert.deepEqual(session.plan(false), {sendImage: true, header: null});
});

test('an answer that repeats no header keeps the session open', () => {
  const {session} = clock();
  session.answered(NEW_SESSION, headers({[NEW_SESSION_HEADER]: OPENED}));
  session.answered('a1b2-c3', headers({}));
  assert.equal(session.open, true);
  assert.equal(session.supported, true);
});

test('an expired session is dropped: the image goes again, in a new session', () => {
  const {now, session} = clock();
  session.answered(NEW_SESSION, headers({[NEW_SESSION_HEADER]: OPENED}));
  now.t = Date.parse('2026-12-06T21:19:31Z');  // within 30 s of Expires: counts as expired
  assert.equal(session.open, false);
  assert.deepEqual(session.plan(true), {sendImage: true, header: NEW_SESSION});
  assert.equal(session.id, null);
  assert.equal(session.end(), null);  // nothing to close
});

test('end() gives the open session to close, once', () => {
  const {session} = clock();
  session.answered(NEW_SESSION, headers({[NEW_SESSION_HEADER]: OPENED}));
  assert.equal(session.end(), 'a1b2-c3');
  assert.equal(session.end(), null);
  assert.deepEqual(session.plan(true), {sendImage: true, header: NEW_SESSION});
});

test('a Closed-Session-Id for this session ends it; for another it does not', () => {
  const {session} = clock();
  session.answered(NEW_SESSION, headers({[NEW_SESSION_HEADER]: OPENED}));
  session.answered('a1b2-c3', headers({[CLOSED_SESSION_HEADER]: 'other'}));
  assert.equal(session.open, true);
  session.answered('a1b2-c3', headers({[CLOSED_SESSION_HEADER]: 'a1b2-c3'}));
  assert.equal(session.open, false);
});

test('a browser clock past the Expires does not expire every session at once', () => {
  const {now, session} = clock(Date.parse('2026-12-06T22:00:00Z'));  // 40 min ahead of the endpoint
  session.answered(NEW_SESSION, headers({[NEW_SESSION_HEADER]: OPENED}));
  now.t += 3600_000;
  assert.deepEqual(session.plan(true), {sendImage: false, header: 'a1b2-c3'});
});
