// One POST to the endpoint. Every failure becomes an ApiError whose message a person can act on: the API's own
// error.message when it sent one, else a sentence about what went wrong on the way.

import {SESSION_HEADER} from './sticky-session.js';

const TIMEOUT_MS = 75_000;  // the endpoint gives a model 60 s; allow for the router and the network

export class ApiError extends Error {
  constructor(message, {status = 0, code = 'network', requestId = null, field = null, retryAfterS = null} = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.field = field;
    this.retryAfterS = retryAfterS;  // a 503 that says when to try again (model_restarting, overloaded, not_ready)
  }
}

/**
 * POST `payload` as JSON (with `headers` too); resolves to {body, ms, status, headers} for a 2xx JSON answer, else
 * rejects with an ApiError.
 */
export async function postJson(url, payload, headers = {}) {
  const started = performance.now();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  let response;
  let text;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {'Content-Type': 'application/json', ...headers},
      body: JSON.stringify(payload),
      signal: controller.signal,
      credentials: 'omit',
    });
    text = await response.text();
  } catch (error) {
    if (controller.signal.aborted) throw new ApiError(`No answer from ${url} within ${TIMEOUT_MS / 1000} s.`);
    throw new ApiError(`Could not reach ${url} (${error.message}). Is the server running? ` +
                       `Another endpoint URL must allow this page's origin (CORS).`);
  } finally {
    clearTimeout(timer);
  }
  const ms = performance.now() - started;
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (response.ok && body && typeof body === 'object') {
    return {body, ms, status: response.status, headers: response.headers};
  }
  throw errorFrom(response, body, text);
}

/** Closes SageMaker session `id`; fire and forget, and still sent while the page unloads (keepalive). */
export function closeSession(url, id) {
  fetch(url, {
    method: 'POST',
    keepalive: true,
    credentials: 'omit',
    headers: {'Content-Type': 'application/json', [SESSION_HEADER]: id},
    body: JSON.stringify({requestType: 'CLOSE'}),
  }).catch(() => {});  // a session nobody closes expires on its own
}

function errorFrom(response, body, text) {
  const status = response.status;
  const error = body && body.error;
  if (error && typeof error === 'object' && error.message) {
    const retry = Number(error.retry_after_s ?? response.headers.get('Retry-After'));
    return new ApiError(error.message, {status, code: error.code || 'error', requestId: error.request_id ?? null,
                                        field: error.field ?? null,
                                        retryAfterS: status === 503 && retry > 0 ? retry : null});
  }
  if (body && typeof body.message === 'string') {  // TorchServe's own errors, API Gateway's {"message": ...}
    return new ApiError(body.message, {status, code: body.type || 'error'});
  }
  if (status === 413) {  // TorchServe refuses an oversized body before our code sees it, with no body at all
    return new ApiError('The request is over the endpoint\'s size limit: lower "Longest side sent" in ' +
                        'Endpoint settings and load the image again.', {status, code: 'payload_too_large'});
  }
  if (response.ok) return new ApiError('The endpoint answered without a JSON body.', {status, code: 'bad_response'});
  const detail = text ? `: ${text.slice(0, 200)}` : '';
  return new ApiError(`HTTP ${status} ${response.statusText}`.trim() + detail, {status, code: 'http_error'});
}
