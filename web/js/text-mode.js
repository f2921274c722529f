// Text mode: a prompt → Lang-SAM detections, listed with label, detector score and mask score; each can be shown
// or hidden, highlighted by hovering its row, and refined by clicking (click mode, with its mask as mask_input).

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
    for (const id of ['box-threshold', 'text-threshold']) {
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
    this.render();
  }

  async segment() {
    const fields = {
      action: 'langsam',
      text_prompt: this.form.elements.prompt.value.trim(),
      box_threshold: Number(this.form.elements['box-threshold'].value),
      text_threshold: Number(this.form.elements['text-threshold'].value),
      max_detections: Number(this.form.elements['max-detections'].value),
    };
    const answer = await this.app.request(fields);
    if (!answer) return;
    this.request = fields;
    this.answer = answer;
    this.detections = answer.masks.map((m, index) => ({
      label: m.label || '(no label)', detectorScore: m.detector_score, detectorBox: m.detector_box, score: m.score, box: m.box, area: m.area,
      rle: m.mask, decoded: decodeRle(m.mask), colour: colourAt(index), visible: true, refined: false,
    }));
    this.hovered = -1;
    this.render();
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
    let index = -1;
    if (at) {
      for (let i = this.detections.length - 1; i >= 0 && index < 0; i--) {
        const {visible, decoded} = this.detections[i];
        const x = Math.min(decoded.width - 1, Math.floor(at.x));
        const y = Math.min(decoded.height - 1, Math.floor(at.y));
        if (visible && decoded.mask[y * decoded.width + x]) index = i;
      }
    }
    if (index === this.hovered) return;
    this.hovered = index;
    this.list.querySelectorAll('.detection').forEach((row, i) => row.classList.toggle('hovered', i === index));
    this.app.stage.setHighlight(index);
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
        label: d.label, detector_score: d.detectorScore, detector_box: d.detectorBox, score: d.score, box: d.box, area: d.area, mask: d.rle,
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
      empty.textContent = `Nothing found for “${this.request.text_prompt}” above box threshold ` +
                          `${this.request.box_threshold.toFixed(2)}. Lower the threshold or rephrase.`;
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
      <span class="scores"><span title="GroundingDINO's confidence in the box">detector <b class="det"></b></span> ·
        <span title="SAM2's predicted IoU of the mask">mask <b class="mask"></b></span></span>
      <button type="button" class="small refine">Refine</button>`;
    item.querySelector('input').checked = d.visible;
    item.querySelector('.swatch').style.background = cssColour(d.colour);
    item.querySelector('.label').textContent = d.label + (d.refined ? ' · refined' : '');
    item.querySelector('.det').textContent = d.detectorScore.toFixed(2);
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
