// The page: wires the image inputs, the two modes, the stage, the view and download controls, the endpoint
// settings and its health, the busy indicator and the error box.

import {ApiError, postJson} from './api.js';
import {ClickMode} from './click-mode.js';
import {cutoutPng, jsonBlob, maskPng, save} from './downloads.js';
import {imageFromBlob, imageFromUrl} from './image-source.js';
import {union} from './masks.js';
import {RequestLog, Segmenter} from './session.js';
import {Settings, bindSettingsDialog} from './settings.js';
import {Stage} from './stage.js';
import {TextMode} from './text-mode.js';

const $ = (selector) => document.querySelector(selector);
const HEALTH_RETRY_MS = 3000;

class App {
  constructor() {
    this.settings = new Settings();
    this.log = new RequestLog($('#request-log'), $('#last-request'));
    this.segmenter = new Segmenter(() => this.settings.url, this.log, (seconds, error) => {
      $('#busy-text').textContent = `Endpoint busy (${error.code}): retrying in ${seconds} s…`;
    });
    this.stage = new Stage($('#stage'), {
      onPoint: (point) => this.busy || this.imagePoint(point),
      onBox: (box, negative) => this.busy || this.imageBox(box, negative),
      onHover: (at) => this.mode === 'text' && this.text.hoverAt(at),
    });
    this.image = null;
    this.mode = 'text';
    this.busy = false;
    this.text = new TextMode($('#panel-text'), this);
    this.click = new ClickMode($('#panel-click'), this);
    this.bindImageInputs();
    this.bindTabs();
    this.bindView();
    this.bindDownloads();
    this.bindShortcuts();
    $('#error .dismiss').addEventListener('click', () => this.clearError());
    bindSettingsDialog($('#settings'), this.settings, () => {
      this.segmenter.endpointChanged();
      this.checkHealth();
    });
    // Leaving (or hiding into the back-forward cache): close the image's session; a page shown again opens another.
    window.addEventListener('pagehide', () => this.segmenter.endSession());
    this.setMode('text');
    this.checkHealth();
  }

  // --- images ---

  bindImageInputs() {
    const file = $('#file-input');
    file.addEventListener('change', () => file.files[0] && this.loadFile(file.files[0]));
    $('#url-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const url = $('#url-input').value.trim();
      if (url) this.load(imageFromUrl(url, this.settings.maxSide));
    });
    const zone = $('#dropzone');
    document.addEventListener('dragover', (event) => {
      event.preventDefault();
      zone.classList.add('dragging');
    });
    document.addEventListener('dragleave', (event) => {
      if (!event.relatedTarget) zone.classList.remove('dragging');
    });
    document.addEventListener('drop', (event) => {
      event.preventDefault();
      zone.classList.remove('dragging');
      const dropped = [...event.dataTransfer.files].find((f) => f.type.startsWith('image/'));
      const url = event.dataTransfer.getData('text/uri-list').split('\n').find((l) => /^https?:/.test(l));
      if (dropped) this.loadFile(dropped);
      else if (url) this.load(imageFromUrl(url.trim(), this.settings.maxSide));
    });
    document.addEventListener('paste', (event) => {
      const item = [...event.clipboardData.items].find((i) => i.type.startsWith('image/'));
      if (item) {
        event.preventDefault();
        this.loadFile(item.getAsFile(), 'pasted image');
      }
    });
  }

  loadFile(file, name = file.name) {
    this.load(imageFromBlob(file, name || 'image', this.settings.maxSide));
  }

  async load(loading) {
    this.setBusy(true, 'Loading image…');
    try {
      this.image = await loading;
    } catch (error) {
      this.showError(error);
      return;
    } finally {
      this.setBusy(false);
    }
    this.clearError();
    this.segmenter.setImage(this.image);
    this.stage.setImage(this.image);
    this.text.reset();
    this.click.reset();
    this.describeImage();
    for (const element of document.querySelectorAll('[data-needs-image]')) element.disabled = false;
    this.setMode(this.mode);
  }

  describeImage() {
    const {name, original, sent, readable} = this.image;
    let how;
    if (!readable) how = 'fetched by the endpoint itself (this page may not read it, so no cut-outs)';
    else if (this.image.downscaled) how = `sent as ${sent.width}×${sent.height}; downloads are full size`;
    else how = 'sent as is';
    $('#image-info').textContent = `${name} · ${original.width}×${original.height} · ${how}`;
  }

  // --- requests ---

  /** Runs one request on the current image, with the busy indicator; the answer, or null after showing an error. */
  async request(fields) {
    if (!this.image || this.busy) return null;
    this.setBusy(true, fields.action === 'langsam' ? 'Finding objects…' : 'Segmenting…');
    try {
      const answer = await this.segmenter.run(fields);
      if (answer) this.clearError();
      return answer;
    } catch (error) {
      this.showError(error);
      return null;
    } finally {
      this.setBusy(false);
    }
  }

  setBusy(on, text = '') {
    this.busy = on;
    $('#busy').hidden = !on;
    $('#busy-text').textContent = text;
    $('#stage').setAttribute('aria-busy', String(on));
    for (const element of document.querySelectorAll('[data-busy-disables]')) {
      element.disabled = on || (element.hasAttribute('data-needs-image') && !this.image);
    }
  }

  showError(error) {
    const box = $('#error');
    const status = error instanceof ApiError && error.status ? `${error.status} ${error.code}` : 'Error';
    box.querySelector('.status').textContent = status;
    box.querySelector('.message').textContent = error.message;
    box.querySelector('.request-id').textContent =
      error instanceof ApiError && error.requestId ? `request id ${error.requestId}` : '';
    box.hidden = false;
  }

  clearError() {
    $('#error').hidden = true;
  }

  async checkHealth() {
    clearTimeout(this.healthTimer);
    const pill = $('#health');
    const where = this.settings.label;
    pill.className = 'pill checking';
    pill.textContent = `${where} · checking…`;
    try {
      await postJson(this.settings.url, {action: 'ping'});
      pill.className = 'pill ready';
      pill.textContent = `${where} · ready`;
      pill.title = this.settings.url;
    } catch (error) {
      const starting = error instanceof ApiError && error.status === 503;
      pill.className = starting ? 'pill starting' : 'pill down';
      pill.textContent = starting ? `${where} · starting…` : `${where} · unreachable`;
      pill.title = error.message;
      this.healthTimer = setTimeout(() => this.checkHealth(), HEALTH_RETRY_MS);
    }
  }

  // --- modes ---

  bindTabs() {
    const tabs = [$('#tab-text'), $('#tab-click')];
    tabs.forEach((tab, index) => {
      tab.addEventListener('click', () => this.setMode(tab.dataset.mode));
      tab.addEventListener('keydown', (event) => {
        const step = {ArrowRight: 1, ArrowLeft: -1}[event.key];
        if (!step) return;
        const next = tabs[(index + step + tabs.length) % tabs.length];
        next.focus();
        this.setMode(next.dataset.mode);
      });
    });
  }

  setMode(mode) {
    this.mode = mode;
    for (const tab of document.querySelectorAll('[role="tab"]')) {
      const selected = tab.dataset.mode === mode;
      tab.setAttribute('aria-selected', String(selected));
      tab.tabIndex = selected ? 0 : -1;
      $(`#${tab.getAttribute('aria-controls')}`).hidden = !selected;
    }
    this.stage.setInteractive(true);  // a click segments in every mode (imagePoint)
    document.body.dataset.mode = mode;
    (mode === 'text' ? this.text : this.click).show();
    this.refreshDownloads();
  }

  /** A click on the image. Click mode: one more point. Text mode: on a detection, refine it; elsewhere, switch
   * to click mode and segment the object there (what people expect of a click on a picture). */
  imagePoint(point) {
    if (this.mode === 'text') {
      const index = this.text.detectionAt(point);
      if (index >= 0) this.refine(index);
      else this.setMode('click');
    }
    return this.click.addPoint(point);
  }

  /** A box dragged on the image: SAM 3's text mode takes it as an example box; otherwise a box prompt. */
  imageBox(box, negative) {
    if (this.mode === 'text' && this.text.model === 'sam3') return this.text.addExemplar(box, negative);
    if (this.mode === 'text') this.setMode('click');
    return this.click.setBox(box);
  }

  refine(index) {
    this.click.startRefine(index, this.text.detections[index]);
    this.setMode('click');
    $('#stage').focus();
  }

  endRefine() {
    this.click.endRefine();
    this.setMode('text');
  }

  // --- view and downloads ---

  bindView() {
    const opacity = $('#opacity');
    const outlines = $('#outlines');
    const update = () => {
      $('output[for="opacity"]').value = `${Math.round(opacity.value * 100)}%`;
      this.stage.setView({opacity: Number(opacity.value), outlines: outlines.checked});
    };
    opacity.addEventListener('input', update);
    outlines.addEventListener('change', update);
    update();
  }

  current() {
    return this.mode === 'text' ? this.text : this.click;
  }

  refreshDownloads() {
    if (!this.text || !this.click) return;  // during construction
    const chosen = this.image ? this.current().selection() : [];
    const none = chosen.length === 0;
    $('#download-mask').disabled = none;
    $('#download-json').disabled = none;
    const cutout = $('#download-cutout');
    cutout.disabled = none || !this.image.readable;
    cutout.title = this.image && !this.image.readable
      ? 'The image host does not let this page read the picture: download the file and load it instead.' : '';
    $('#download-what').textContent = none ? 'Nothing to download yet.'
      : this.mode === 'text' ? `The ${chosen.length} visible detection(s), at ${this.size()}.`
        : `The chosen mask, at ${this.size()}.`;
  }

  size() {
    return `${this.image.original.width}×${this.image.original.height}`;
  }

  selectedMask() {
    return union(this.current().selection().map((m) => m.decoded));
  }

  bindDownloads() {
    const base = () => this.image.name.replace(/\.[^.]+$/, '') || 'image';
    $('#download-mask').addEventListener('click', async () => {
      save(await maskPng(this.image, this.selectedMask()), `${base()}-mask.png`);
    });
    $('#download-cutout').addEventListener('click', async () => {
      const png = await cutoutPng(this.image, this.selectedMask());
      if (png) save(png, `${base()}-cutout.png`);
      else this.showError(new Error('The mask is empty: there is nothing to cut out.'));
    });
    $('#download-json').addEventListener('click', () => {
      const {name, original, sent} = this.image;
      const body = {
        image: {name, width: original.width, height: original.height},
        sent: {...sent, note: 'masks and boxes are in pixels of the sent image; divide by scale for the original'},
        endpoint: this.settings.url,
        mode: this.mode,
        ...this.current().exportJson(),
      };
      save(jsonBlob(body), `${base()}-segments.json`);
    });
  }

  // Ctrl/Cmd+Z undo, Ctrl/Cmd+Shift+Z or Ctrl+Y redo, 1-3 choose a candidate (click mode, outside text fields).
  bindShortcuts() {
    document.addEventListener('keydown', (event) => {
      if (this.mode !== 'click' || event.target.matches('input[type="text"], input[type="url"], input[type="number"]')
          || $('#settings').open) return;
      const key = event.key.toLowerCase();
      const mod = event.ctrlKey || event.metaKey;
      if (mod && key === 'z') {
        event.preventDefault();
        if (event.shiftKey) this.click.redo();
        else this.click.undo();
      } else if (mod && key === 'y') {
        event.preventDefault();
        this.click.redo();
      } else if (!mod && ['1', '2', '3'].includes(key)) {
        const index = Number(key) - 1;
        if (index < this.click.history.current.masks.length) this.click.choose(index);
      }
    });
  }
}

window.segserve = new App();
