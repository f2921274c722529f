// Click mode: points (object / not object) and a box → masks from SAM2, or from SAM 3's tracker when text mode's
// model is SAM 3 (one encoding for both); with "3 candidates" on, the three answers are offered with their scores.
// Every answered prompt is a step that undo / redo / clear move through (clear is a step too, so it can be undone).
// Refining a text detection starts from its mask, sent as mask_input with every click, to the model that found it.

import {History} from './history.js';
import {decodeRle} from './rle.js';
import {colourAt, cssColour} from './palette.js';
import {paint} from './masks.js';

const MAX_POINTS = 64;  // the API's limit
const EMPTY = Object.freeze({points: [], box: null, masks: [], chosen: 0});

export class ClickMode {
  constructor(root, app) {
    this.root = root;
    this.app = app;
    this.candidates = root.querySelector('#candidates');
    this.multimask = root.querySelector('#multimask');
    this.banner = root.querySelector('#refine-banner');
    this.buttons = Object.fromEntries(['undo', 'redo', 'clear'].map((n) => [n, root.querySelector(`#${n}`)]));
    this.target = null;  // {index, label, colour, start, action}: the text detection being refined
    this.history = new History(EMPTY);
    this.buttons.undo.addEventListener('click', () => this.undo());
    this.buttons.redo.addEventListener('click', () => this.redo());
    this.buttons.clear.addEventListener('click', () => this.clear());
    root.querySelector('#refine-done').addEventListener('click', () => this.app.endRefine());
    this.modelChanged();
    this.render();
  }

  /** "sam2", or "sam3" when refining a SAM 3 detection or when text mode's model is SAM 3. */
  get action() {
    if (this.target) return this.target.action;
    return this.app.text && this.app.text.model === 'sam3' ? 'sam3' : 'sam2';
  }

  modelChanged() {
    this.root.querySelector('#click-model').textContent =
      `Clicks are answered by ${this.action === 'sam3' ? "SAM 3's tracker" : 'SAM2'}.`;
  }

  reset() {
    this.target = null;
    this.history = new History(EMPTY);
    this.render();
  }

  /** Start refining text detection `index` (its mask and colour): clicks now edit that mask. */
  startRefine(index, detection) {
    const start = {points: [], box: null, chosen: 0,
                   masks: [{rle: detection.rle, decoded: detection.decoded, score: detection.score,
                            box: detection.box, area: detection.area}]};
    this.target = {index, label: detection.label, colour: detection.colour, start,
                   action: detection.action === 'sam3' ? 'sam3' : 'sam2'};
    this.modelChanged();
    this.history = new History(start);
    this.multimask.checked = false;  // with several points and a mask, the single answer is the better one
    this.render();
  }

  endRefine() {
    this.reset();
    this.modelChanged();
  }

  addPoint(point) {
    const current = this.history.current;
    if (current.points.length >= MAX_POINTS) {
      this.app.showError(new Error(`At most ${MAX_POINTS} points: undo some, or clear.`));
      return;
    }
    return this.run({...current, points: [...current.points, point]}, {point});
  }

  setBox(box) {
    return this.run({...this.history.current, box}, {box});
  }

  async run(next, pending) {
    this.app.stage.setPrompts({points: this.history.current.points, box: this.history.current.box, pending});
    const fields = {action: this.action, multimask: this.multimask.checked};
    if (next.points.length) {
      fields.points = next.points.map((p) => [p.x, p.y]);
      fields.labels = next.points.map((p) => p.label);
    }
    if (next.box) fields.box = next.box;
    const previous = this.history.current.masks[this.history.current.chosen];
    if (this.target && previous) fields.mask_input = {size: previous.rle.size, counts: previous.rle.counts};
    const answer = await this.app.request(fields);
    if (!answer) {
      this.show();  // drop the pending prompt
      return;
    }
    const masks = answer.masks.map((m) => ({rle: m.mask, decoded: decodeRle(m.mask), score: m.score, box: m.box,
                                            area: m.area}));
    this.history.push({...next, masks, chosen: 0, request: fields, answer});
    this.changed();
  }

  undo() {
    if (this.history.undo()) this.changed();
  }

  redo() {
    if (this.history.redo()) this.changed();
  }

  clear() {
    if (this.history.current === this.start) return;
    this.history.push(this.start);
    this.changed();
  }

  /** The step clear goes back to: nothing, or the detection's mask as text mode found it. */
  get start() {
    return this.target ? this.target.start : EMPTY;
  }

  choose(index) {
    this.history.replace({...this.history.current, chosen: index});
    this.changed();
  }

  /** The chosen mask of the current step, or null. */
  chosenMask() {
    const {masks, chosen} = this.history.current;
    return masks[chosen] || null;
  }

  changed() {
    if (this.target) {
      const chosen = this.chosenMask();
      this.app.text.replaceMask(this.target.index, chosen, this.history.current !== this.target.start);
    }
    this.render();
  }

  show() {
    const {points, box} = this.history.current;
    const chosen = this.chosenMask();
    const colour = this.target ? this.target.colour : colourAt(0);
    this.app.stage.setMasks(chosen ? [{mask: chosen.decoded, colour, visible: true}] : []);
    this.app.stage.setPrompts({points, box});
  }

  selection() {
    const chosen = this.chosenMask();
    return chosen ? [chosen] : [];
  }

  /** The JSON download: the chosen mask, and the request that made it. */
  exportJson() {
    const {request, answer} = this.history.current;
    const chosen = this.chosenMask();
    return {
      request: request || null,
      masks: chosen ? [{score: chosen.score, box: chosen.box, area: chosen.area, mask: chosen.rle}] : [],
      model: answer ? answer.model : null,
    };
  }

  render() {
    this.buttons.undo.disabled = !this.history.canUndo;
    this.buttons.redo.disabled = !this.history.canRedo;
    this.buttons.clear.disabled = this.history.current === this.start;
    this.banner.hidden = !this.target;
    if (this.target) {
      this.banner.querySelector('.what').textContent = `${this.target.label} ${this.target.index + 1}`;
      this.banner.querySelector('.swatch').style.background = cssColour(this.target.colour);
    }
    this.renderCandidates();
    if (this.app.mode === 'click') this.show();
    this.app.refreshDownloads();
  }

  renderCandidates() {
    const {masks, chosen} = this.history.current;
    const list = this.candidates.querySelector('.cards');
    list.replaceChildren();
    this.candidates.hidden = masks.length < 2;
    if (masks.length < 2) return;
    const colour = this.target ? this.target.colour : colourAt(0);
    masks.forEach((m, index) => {
      const card = document.createElement('label');
      card.className = 'candidate';
      card.innerHTML = `<input type="radio" name="candidate"><canvas width="96" height="72" aria-hidden="true"></canvas>
        <span class="caption">#<span class="n"></span> <b></b></span>`;
      const input = card.querySelector('input');
      input.value = String(index);
      input.checked = index === chosen;
      input.setAttribute('aria-label', `Candidate ${index + 1}, score ${m.score.toFixed(2)}`);
      card.querySelector('.n').textContent = String(index + 1);
      card.querySelector('b').textContent = m.score.toFixed(2);
      input.addEventListener('change', () => this.choose(index));
      thumbnail(card.querySelector('canvas'), this.app.image, m.decoded, colour);
      list.append(card);
    });
  }
}

function thumbnail(canvas, image, mask, colour) {
  const {width, height} = image.sent;
  const scale = Math.min(canvas.width / width, canvas.height / height);
  const w = Math.round(width * scale);
  const h = Math.round(height * scale);
  const x = (canvas.width - w) / 2;
  const y = (canvas.height - h) / 2;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(image.display, x, y, w, h);
  ctx.globalAlpha = 0.6;
  ctx.drawImage(paint(mask, [...colour, 255]), x, y, w, h);
  ctx.globalAlpha = 1;
}
