// Where requests go and how large an image is sent, remembered in this browser (localStorage).
//
// "This server" is /invocations on the page's own origin (`make serve` serves both, so no CORS is involved). Any
// other URL is called as is: e.g. an API Gateway stage whose Lambda forwards the JSON to SageMaker InvokeEndpoint
// and answers with CORS headers for this page's origin.

import {DEFAULT_MAX_SIDE} from './image-source.js';

const KEY = 'segserve.settings';
const MIN_SIDE = 64;
const MAX_SIDE = 8192;

export class Settings {
  constructor(storage = window.localStorage) {
    this.storage = storage;
    const saved = this.read();
    this.endpoint = typeof saved.endpoint === 'string' ? saved.endpoint : '';
    this.maxSide = clampSide(saved.maxSide);
  }

  read() {
    try {
      return JSON.parse(this.storage.getItem(KEY) || '{}') || {};
    } catch {
      return {};
    }
  }

  save({endpoint, maxSide}) {
    this.endpoint = endpoint;
    this.maxSide = clampSide(maxSide);
    this.storage.setItem(KEY, JSON.stringify({endpoint: this.endpoint, maxSide: this.maxSide}));
  }

  /** The URL requests are POSTed to. */
  get url() {
    return this.endpoint || new URL('../invocations', window.location.href).href;
  }

  get label() {
    return this.endpoint ? new URL(this.endpoint).host : 'This server';
  }
}

function clampSide(value) {
  const side = Number.parseInt(value, 10);
  return Number.isFinite(side) ? Math.min(MAX_SIDE, Math.max(MIN_SIDE, side)) : DEFAULT_MAX_SIDE;
}

/** The dialog: fills it from `settings`, validates, saves, then calls onSave(). */
export function bindSettingsDialog(dialog, settings, onSave) {
  const form = dialog.querySelector('form');
  const custom = form.elements['endpoint-url'];
  const error = dialog.querySelector('.field-error');

  const sync = () => {
    custom.disabled = form.elements.endpoint.value !== 'custom';
  };
  form.addEventListener('change', sync);

  document.querySelector('#settings-open').addEventListener('click', () => {
    form.elements.endpoint.value = settings.endpoint ? 'custom' : 'local';
    custom.value = settings.endpoint;
    form.elements['max-side'].value = settings.maxSide;
    error.textContent = '';
    sync();
    dialog.showModal();
  });
  dialog.querySelector('[data-cancel]').addEventListener('click', () => dialog.close());

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    let endpoint = '';
    if (form.elements.endpoint.value === 'custom') {
      endpoint = custom.value.trim();
      let parsed = null;
      try {
        parsed = new URL(endpoint);
      } catch {
        parsed = null;
      }
      if (!parsed || !['http:', 'https:'].includes(parsed.protocol)) {
        error.textContent = 'Enter a full http:// or https:// URL, e.g. https://abc123.execute-api.us-east-1.amazonaws.com/prod/invocations';
        custom.focus();
        return;
      }
    }
    settings.save({endpoint, maxSide: form.elements['max-side'].value});
    dialog.close();
    onSave();
  });
}
