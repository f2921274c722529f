// Requests about the current image. The first one carries the image; later ones its `image_id` (the endpoint keeps
// the image's SAM2 / SAM 3 encoding, so a click costs a decode, not an encode). An endpoint that no longer knows the id
// (evicted, restarted, another instance) answers 404 not_found: the request is sent again with the image itself.
// A 503 that says when to retry (a model restarting, a full queue) is retried after that wait, up to RETRIES times.
// Behind SageMaker, a stateful session (sticky-session.js) keeps the image's requests on the instance that encoded
// it: opened with the image, closed when the image changes or the page goes away, and opened again (with the
// image) when it expired or the endpoint refused it (400 session_expired, or 404 not_found: the instance lost it).

import {ApiError, closeSession, postJson} from './api.js';
import {NEW_SESSION, NEW_SESSION_HEADER, SESSION_HEADER, StickySession, parseNewSession} from './sticky-session.js';

const RETRIES = 2;
const MAX_WAIT_S = 15;

export class Segmenter {
  constructor(endpointUrl, log, onWait, now = () => Date.now()) {
    this.endpointUrl = endpointUrl;  // () => the URL to POST to
    this.log = log;
    this.onWait = onWait;  // (seconds, error): told before waiting to retry a 503
    this.now = now;
    this.session = new StickySession(now);
    this.sessionUrl = null;  // where the session was opened, and so where it is closed
    this.image = null;
    this.imageId = null;
    this.generation = 0;  // bumped by every new image: answers about an older one are dropped
  }

  setImage(image) {
    this.endSession();
    this.image = image;
    this.imageId = null;
    this.generation++;
  }

  /** Closes the image's session, if one is open (a new image, the page going away). */
  endSession() {
    const id = this.session.end();
    if (id) closeSession(this.sessionUrl, id);
  }

  /** Another endpoint: whether it does sessions is found out again. */
  endpointChanged() {
    this.endSession();
    this.session = new StickySession(this.now);
    this.imageId = null;
  }

  /** Runs `fields` (action and prompt) on the current image; resolves to the answer, or null if the image changed. */
  async run(fields, retries = RETRIES) {
    const generation = this.generation;
    const {sendImage, header} = this.session.plan(this.imageId !== null);
    const byId = !sendImage;
    const payload = {...fields, ...(byId ? {image_id: this.imageId} : this.image.payload)};
    const sentAs = (byId ? 'image_id' : Object.keys(this.image.payload)[0]) +
                   (header === NEW_SESSION ? ' · new session' : header ? ' · session' : '');
    const url = this.endpointUrl();
    let reply;
    try {
      reply = await postJson(url, payload, header ? {[SESSION_HEADER]: header} : {});
    } catch (error) {
      if (generation !== this.generation) return null;
      const next = afterFailure(error, {byId, retries, inSession: Boolean(header) && header !== NEW_SESSION});
      if (next && next.waitS) {
        this.log.add({action: fields.action, sentAs, error, note: `retried after ${next.waitS} s`});
        this.onWait(next.waitS, error);
        await new Promise((resolve) => setTimeout(resolve, next.waitS * 1000));
        return generation === this.generation ? this.run(fields, retries - 1) : null;
      }
      const note = next ? `image sent again${next.reopen ? ', new session' : ''}` : '';
      this.log.add({action: fields.action, sentAs, error, note});
      if (!next) throw error;
      if (next.reopen && error.code === 'session_expired') this.session.end();  // gone: nothing to close
      else if (next.reopen) this.endSession();
      this.imageId = null;
      return this.run(fields, retries);
    }
    const answerHeader = (name) => reply.headers.get(name);
    if (generation !== this.generation) {  // an answer about an older image: a session it opened is not needed
      const opened = parseNewSession(answerHeader(NEW_SESSION_HEADER));
      if (opened) closeSession(url, opened.id);
      return null;
    }
    this.session.answered(header, answerHeader);
    if (this.session.id !== null) this.sessionUrl = url;
    const answer = reply.body;
    const {width, height} = this.image.sent;
    if (answer.image && (answer.image.width !== width || answer.image.height !== height)) {
      throw new ApiError(`The endpoint read the image as ${answer.image.width}x${answer.image.height}, ` +
                         `but this page shows it as ${width}x${height}.`, {code: 'size_mismatch'});
    }
    this.imageId = answer.image ? answer.image.id : null;
    this.log.add({action: fields.action, sentAs, ms: reply.ms, answer});
    return answer;
  }
}

/**
 * What to do after a failed request: {waitS} to send it again after that wait (a 503 that says when, while
 * `retries` last), {resend: true, reopen} to send it again with the image (its `image_id` was not known, or the
 * session it named is gone; `reopen`: in a new session), or null to fail. `inSession`: it named an open session.
 */
export function afterFailure(error, {byId, retries, inSession = false}) {
  if (!(error instanceof ApiError)) return null;
  if (error.retryAfterS && retries > 0) return {waitS: Math.min(MAX_WAIT_S, error.retryAfterS)};
  if (byId && error.status === 404 && error.code === 'not_found') return {resend: true, reopen: inSession};
  if (inSession && error.status === 400 && error.code === 'session_expired') return {resend: true, reopen: true};
  return null;
}

/** The last requests, newest first, in a table; the newest also in one line a screen reader announces. */
export class RequestLog {
  constructor(table, summary, limit = 8) {
    this.body = table.tBodies[0];
    this.summary = summary;
    this.limit = limit;
  }

  add({action, sentAs, ms = null, answer = null, error = null, note = ''}) {
    const row = this.body.insertRow(0);
    const timings = answer ? answer.timings_ms || {} : {};
    const encoder = answer ? encoderText(answer, timings) : '';
    const status = error ? `${error.status || '—'} ${error.code}` : '200';
    const cells = [action, sentAs, status, ms === null ? '—' : seconds(ms),
                   timings.total === undefined ? '—' : seconds(timings.total), encoder || note || '—'];
    for (const text of cells) row.insertCell().textContent = text;
    row.className = error ? 'failed' : '';
    row.title = error ? error.message : Object.entries(timings).map(([k, v]) => `${k} ${seconds(v)}`).join(' · ');
    while (this.body.rows.length > this.limit) this.body.deleteRow(-1);
    this.summary.textContent = error
      ? `${action}: ${status}${note ? `, ${note}` : ''}`
      : `${action}: ${seconds(ms)} round trip, ${encoder}`;
  }
}

function encoderText(answer, timings) {
  const sam3 = answer.action === 'sam3';
  const stage = sam3 ? 'sam3_vision_encoder' : 'sam2_image_encoder';
  const ran = stage in timings;
  const cache = answer.cache ? `cache ${answer.cache}, ` : '';
  if (!sam3 && !('sam2_mask_decoder' in timings) && !ran) return `${cache}no SAM2 stage`;
  return ran ? `${cache}encoder ran (${seconds(timings[stage])})` : `${cache}encoder skipped`;
}

function seconds(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
