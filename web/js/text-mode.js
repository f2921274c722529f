// Text mode: a prompt → detections by Lang-SAM (GroundingDINO + SAM2) or SAM 3, listed with label and scores;
// each can be shown or hidden, highlighted by hovering its row, and refined by clicking (click mode, with its
// mask as mask_input, on the model that found it). With SAM 3, boxes dragged on the image are example boxes.

import {decodeRle} from './rle.js';
import {colourAt, cssColour} from './palette.js';

export class TextMode {
  constructor(root, app) {
    this.root = root;
    this.app = app;
    this.form = root.querySelector('#text-form');
    this.list = root.querySelector('#detections');
    this.heading = root.querySelector('#detections-heading');
    this.detections = [];
    this.request = null;  // the fields of the request that found them
    this.answer = null;
    this.hovered = -1;
    this.exemplars = [];  // SAM 3's example boxes: {box, label}, 1 = more like this, 0 = not this
    this.notes = root.querySelector('#answer-notes');
    this.form.elements.model.addEventListener('change', () => this.modelChanged());
    root.querySelector('#clear-exemplars').addEventListener('click', () => {
      this.exemplars = [];
      this.renderExemplars();
    });
    this.modelChanged();
    for (const id of ['box-threshold', 'text-threshold', 'score-threshold']) {
      const input = this.form.elements[id];
      const shown = root.querySelector(`output[for="${id}"]`);
      const update = () => { shown.value = Number(input.value).toFixed(2); };
      input.addEventListener('input', update);
      update();
    }
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.segment();
    });
    root.querySelector('#show-all').addEventListener('click', () => this.setAllVisible(true));
    root.querySelector('#hide-all').addEventListener('click', () => this.setAllVisible(false));
  }

  reset() {
    this.detections = [];
    this.answer = null;
    this.request = null;
    this.exemplars = [];
    this.renderExemplars();
    this.render();
  }

  /** "langsam" or "sam3": the model the form sends text to. */
  get model() {
    return this.form.elements.model.value;
  }

  modelChanged() {
    for (const element of this.root.querySelectorAll('[data-for-model]')) {
      element.hidden = element.dataset.forModel !== this.model;
    }
    this.exemplars = [];
    this.renderExemplars();
    if (this.app.click) this.app.click.modelChanged();  // not yet built while the page starts
  }

  /** A box dragged on the image in SAM 3 mode: one more example, and the prompt runs again. */
  addExemplar(box, negative) {
    this.exemplars.push({box, label: negative ? 0 : 1});
    this.renderExemplars();
    return this.segment();
  }

  renderExemplars() {
    const like = this.exemplars.filter((e) => e.label === 1).length;
    const unlike = this.exemplars.length - like;
    this.root.querySelector('#exemplars').textContent = this.exemplars.length
      ? `Example boxes: ${like} like this, ${unlike} not this.` : 'No example boxes.';
    this.root.querySelector('#clear-exemplars').disabled = !this.exemplars.length;
  }

  fields() {
    const text = this.form.elements.prompt.value.trim();
    const max = Number(this.form.elements['max-detections'].value);
    if (this.model === 'langsam') {
      return {action: 'langsam', text_prompt: text, box_threshold: Number(this.form.elements['box-threshold'].value),
              text_threshold: Number(this.form.elements['text-threshold'].value), max_detections: max};
    }
    const fields = {action: 'sam3', score_threshold: Number(this.form.elements['score-threshold'].value),
                    max_detections: max};
    if (text) fields.text_prompt = text;
    if (this.exemplars.length) {
      fields.exemplar_boxes = this.exemplars.map((e) => e.box);
      fields.exemplar_labels = this.exemplars.map((e) => e.label);
    }
    return fields;
  }

  async segment() {
    const fields = this.fields();
    if (!fields.text_prompt && !fields.exemplar_boxes) {
      this.app.showError(new Error(this.model === 'sam3'
        ? 'Type what to find, or drag a box around an example on the image.' : 'Type what to find.'));
      return;
    }
    const answer = await this.app.request(fields);
    if (!answer) return;
    this.request = fields;
    this.answer = answer;
    this.detections = answer.masks.map((m, index) => ({
      action: fields.action, label: m.label || (fields.action === 'sam3' ? 'like the examples' : '(no label)'),
      detectorScore: m.detector_score ?? null, detectorBox: m.detector_box, score: m.score, box: m.box, area: m.area,
      rle: m.mask, decoded: decodeRle(m.mask), colour: colourAt(index), visible: true, refined: false,
    }));
    this.hovered = -1;
    this.renderNotes(answer);
    this.render();
  }

  /** langsam's prompt refinement: what the detector was given instead, and any warnings. */
  renderNotes(answer) {
    const lines = [];
    if (answer.refined_prompt) lines.push(`Refined prompt: “${answer.refined_prompt}”`);
    for (const warning of answer.warnings || []) lines.push(`Warning (${warning.code}): ${warning.message}`);
    this.notes.textContent = lines.join(' · ');
    this.notes.hidden = !lines.length;
  }

  /** A refined mask for detection `index`, from click mode. */
  replaceMask(index, {rle, decoded, score, box, area}, refined) {
    Object.assign(this.detections[index], {rle, decoded, score, box, area, refined});
    this.render();
  }

  setAllVisible(visible) {
    for (const d of this.detections) d.visible = visible;
    this.render();
  }

  /** The pointer over the image at `at` (image px, or null): highlight the topmost visible detection there. */
  hoverAt(at) {
    const index = this.detectionAt(at);
    if (index === this.hovered) return;
    this.hovered = index;
    this.list.querySelectorAll('.detection').forEach((row, i) => row.classList.toggle('hovered', i === index));
    this.app.stage.setHighlight(index);
  }

  /** The topmost visible detection at `at` (image px, or null), or -1. */
  detectionAt(at) {
    for (let i = this.detections.length - 1; at && i >= 0; i--) {
      const {visible, decoded} = this.detections[i];
      const x = Math.min(decoded.width - 1, Math.floor(at.x));
      const y = Math.min(decoded.height - 1, Math.floor(at.y));
      if (visible && decoded.mask[y * decoded.width + x]) return i;
    }
    return -1;
  }

  /** What the stage shows in this mode. */
  show() {
    this.app.stage.setMasks(this.detections.map((d) => ({mask: d.decoded, colour: d.colour, visible: d.visible})),
                            this.hovered);
    this.app.stage.setPrompts({points: [], box: null});
  }

  /** The masks downloads are made of: every visible detection. */
  selection() {
    return this.detections.filter((d) => d.visible);
  }

  /** The JSON download: the visible detections (refined masks included), and the request that found them. */
  exportJson() {
    return {
      request: this.request,
      masks: this.selection().map((d) => ({
        label: d.label, detector_score: d.detectorScore ?? undefined, detector_box: d.detectorBox, score: d.score, box: d.box,
        area: d.area, mask: d.rle,
        refined: d.refined,
      })),
      model: this.answer ? this.answer.model : null,
    };
  }

  render() {
    const count = this.detections.length;
    this.heading.textContent = this.answer ? `Detections (${count})` : 'Detections';
    this.list.replaceChildren();
    if (this.answer && !count) {
      const empty = document.createElement('li');
      empty.className = 'empty-note';
      const sam3 = this.request.action === 'sam3';
      const what = this.request.text_prompt ? `“${this.request.text_prompt}”` : 'the examples';
      const threshold = sam3 ? this.request.score_threshold : this.request.box_threshold;
      empty.textContent = `Nothing found for ${what} above ${sam3 ? 'score' : 'box'} threshold ` +
                          `${threshold.toFixed(2)}. Lower the threshold or rephrase.`;
      this.list.append(empty);
    }
    this.detections.forEach((d, index) => this.list.append(this.row(d, index)));
    this.root.querySelector('#show-all').disabled = !count;
    this.root.querySelector('#hide-all').disabled = !count;
    if (this.app.mode === 'text') this.show();
    this.app.refreshDownloads();
  }

  row(d, index) {
    const item = document.createElement('li');
    item.className = 'detection';
    item.dataset.index = index;
    const id = `detection-${index}`;
    item.innerHTML = `
      <input type="checkbox" id="${id}">
      <label for="${id}"><span class="swatch"></span><span class="label"></span></label>
      <span class="scores"><span class="detector" title="GroundingDINO's confidence in the box">detector <b class="det"></b> ·</span>
        <span class="mask-score"></span> <b class="mask"></b></span>
      <button type="button" class="small refine">Refine</button>`;
    item.querySelector('input').checked = d.visible;
    item.querySelector('.swatch').style.background = cssColour(d.colour);
    item.querySelector('.label').textContent = d.label + (d.refined ? ' · refined' : '');
    if (d.detectorScore === null) item.querySelector('.detector').remove();
    else item.querySelector('.det').textContent = d.detectorScore.toFixed(2);
    const scored = item.querySelector('.mask-score');
    scored.textContent = d.action === 'sam3' && !d.refined ? 'score' : 'mask';
    scored.title = d.action === 'sam3' && !d.refined ? "SAM 3's detection score" : "the model's predicted IoU of the mask";
    item.querySelector('.mask').textContent = d.score.toFixed(2);
    item.querySelector('.refine').setAttribute('aria-label', `Refine ${d.label} ${index + 1} by clicking`);
    item.querySelector('input').addEventListener('change', (event) => {
      d.visible = event.target.checked;
      this.show();
      this.app.refreshDownloads();
    });
    item.querySelector('.refine').addEventListener('click', () => this.app.refine(index));
    const hover = (on) => () => {
      this.hovered = on ? index : -1;
      item.classList.toggle('hovered', on);
      this.app.stage.setHighlight(this.hovered);
    };
    item.addEventListener('mouseenter', hover(true));
    item.addEventListener('mouseleave', hover(false));
    item.addEventListener('focusin', hover(true));
    item.addEventListener('focusout', hover(false));
    return item;
  }
}
