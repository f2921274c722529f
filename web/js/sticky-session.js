// SageMaker stateful sessions (docs/API.md §3.6) as the page uses them: behind an endpoint with several instances,
// the requests about one image must reach the instance that holds its encoding. The first request with the image
// asks for a session (NEW_SESSION); the answer names it (X-Amzn-SageMaker-New-Session-Id: <id>; Expires=<UTC>);
// every later request about that image carries the id. An endpoint whose answer names no session (another
// backend, or a CORS policy that hides the header) gets no session header again: the page works as before.
// Pure state, no requests: Segmenter (session.js) sends them.

export const SESSION_HEADER = 'X-Amzn-SageMaker-Session-Id';
export const NEW_SESSION_HEADER = 'X-Amzn-SageMaker-New-Session-Id';
export const CLOSED_SESSION_HEADER = 'X-Amzn-SageMaker-Closed-Session-Id';
export const NEW_SESSION = 'NEW_SESSION';
const MARGIN_MS = 30_000;  // a session this close to its Expires counts as expired (clocks and round trips)
// botocore's pattern: an id of letters, digits and single hyphens; one space; a UTC time with Z.
const ANSWER = /^([A-Za-z0-9](?:-*[A-Za-z0-9]){0,255});\sExpires=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$/;

/** {id, expiresAt (ms since the epoch)} from a New-Session-Id header value, or null. */
export function parseNewSession(value) {
  const match = ANSWER.exec((value || '').trim());
  if (!match) return null;
  const expiresAt = Date.parse(match[2]);
  return Number.isFinite(expiresAt) ? {id: match[1], expiresAt} : null;
}

export class StickySession {
  constructor(now = () => Date.now()) {
    this.now = now;
    this.id = null;
    this.expiresAt = 0;
    this.supported = true;  // until an answer to NEW_SESSION names no session
  }

  get open() {
    return this.id !== null && this.now() < this.expiresAt - MARGIN_MS;
  }

  /**
   * How to send the next request about the image: {sendImage, header} (header: the session header's value, or
   * null for none). `imageKnown`: the endpoint has answered with the image's id. With no open session (none yet,
   * or it expired) the image goes again with NEW_SESSION, so the new session is on the instance that encodes it.
   */
  plan(imageKnown) {
    if (this.open) return {sendImage: !imageKnown, header: this.id};
    this.id = null;
    if (this.supported) return {sendImage: true, header: NEW_SESSION};
    return {sendImage: !imageKnown, header: null};
  }

  /** A 2xx answer to a request sent with session header `sent`; `header(name)`: the answer's header, or null. */
  answered(sent, header) {
    const opened = parseNewSession(header(NEW_SESSION_HEADER));
    if (opened) {
      this.id = opened.id;
      // A browser clock far ahead of the endpoint's would make every session look expired: then the endpoint's
      // own refusal (session_expired) is what ends it.
      this.expiresAt = opened.expiresAt - this.now() > MARGIN_MS ? opened.expiresAt : Infinity;
      return;
    }
    if (sent === NEW_SESSION) this.supported = false;
    if (this.id !== null && header(CLOSED_SESSION_HEADER) === this.id) this.id = null;
  }

  /** Ends the session (a new image, the page going away, the endpoint refusing it): its id to close, or null. */
  end() {
    const id = this.open ? this.id : null;
    this.id = null;
    return id;
  }
}
