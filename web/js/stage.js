// The picture and everything drawn on it, in three stacked canvases at the sent image's size: the image, the masks
// (fills and outlines), and the prompts (points, box, keyboard cursor). Pointer and keyboard input on it become
// prompts in image pixels: click = object, right-click / Alt / Shift + click = not object, drag = box.

import {innerEdge, paint} from './masks.js';

const DRAG_PX = 5;  // a press that moves further than this (screen px) draws a box
const POINT_COLOURS = {1: '#22c55e', 0: '#ef4444'};

export class Stage {
  constructor(root, {onPoint, onBox, onHover}) {
    this.root = root;
    this.box = root.querySelector('.canvas-box');
    this.layers = Object.fromEntries(['image', 'mask', 'prompt'].map(
      (name) => [name, root.querySelector(`#${name}-layer`)]));
    this.onPoint = onPoint;
    this.onBox = onBox;
    this.onHover = onHover;  // (x, y) in image px, or null when the pointer leaves; only outside click mode
    this.image = null;
    this.masks = [];
    this.highlight = -1;
    this.opacity = 0.5;
    this.outlines = true;
    this.prompts = {points: [], box: null, pending: null};
    this.interactive = false;
    this.cursor = null;  // keyboard cursor, image px
    this.painted = new WeakMap();  // mask → {fill, edge} canvases
    this.drag = null;
    new ResizeObserver(() => this.fit()).observe(root);
    this.listen();
  }

  setImage(image) {
    this.image = image;
    for (const canvas of Object.values(this.layers)) {
      canvas.width = image.sent.width;
      canvas.height = image.sent.height;
    }
    this.layers.image.getContext('2d').drawImage(image.display, 0, 0, image.sent.width, image.sent.height);
    this.root.classList.add('has-image');
    this.masks = [];
    this.prompts = {points: [], box: null, pending: null};
    this.cursor = null;
    this.fit();
    this.drawMasks();
    this.drawPrompts();
  }

  /** masks: [{mask (see masks.js), colour: [r, g, b], visible}]; highlight: the index to bring forward, or -1. */
  setMasks(masks, highlight = -1) {
    this.masks = masks;
    this.highlight = highlight;
    this.drawMasks();
  }

  setHighlight(index) {
    if (index === this.highlight) return;
    this.highlight = index;
    this.drawMasks();
  }

  setView({opacity, outlines}) {
    this.opacity = opacity;
    this.outlines = outlines;
    this.drawMasks();
  }

  setPrompts(prompts) {
    this.prompts = {pending: null, ...prompts};
    this.drawPrompts();
  }

  setInteractive(on) {
    this.interactive = on;
    this.root.classList.toggle('interactive', on);
  }

  /** The largest size with the image's aspect ratio that fits the stage. */
  fit() {
    if (!this.image) return;
    const {width, height} = this.image.sent;
    const room = this.root.getBoundingClientRect();
    const scale = Math.min((room.width - 24) / width, (room.height - 24) / height);
    this.box.style.width = `${Math.max(1, Math.floor(width * scale))}px`;
    this.box.style.height = `${Math.max(1, Math.floor(height * scale))}px`;
    this.drawPrompts();  // marker sizes follow the display scale
  }

  /** Image px per screen px. */
  get density() {
    const shown = this.box.getBoundingClientRect().width;
    return this.image && shown ? this.image.sent.width / shown : 1;
  }

  drawMasks() {
    const canvas = this.layers.mask;
    const ctx = canvas.getContext('2d');
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!this.image) return;
    const thickness = Math.max(1, Math.round(this.density * 1.5));
    this.masks.forEach((entry, index) => {
      if (!entry.visible) return;
      const {fill, edge} = this.paintedMask(entry, thickness);
      const dim = this.highlight >= 0 && index !== this.highlight;
      ctx.globalAlpha = dim ? this.opacity * 0.35 : index === this.highlight ? Math.min(1, this.opacity + 0.25)
                                                                              : this.opacity;
      ctx.drawImage(fill, 0, 0);
      if (this.outlines) {
        ctx.globalAlpha = dim ? 0.35 : 1;
        ctx.drawImage(edge, 0, 0);
      }
    });
    ctx.globalAlpha = 1;
  }

  paintedMask(entry, thickness) {
    const key = `${entry.colour}|${thickness}`;
    let cached = this.painted.get(entry.mask);
    if (!cached || cached.key !== key) {
      cached = {key, fill: paint(entry.mask, [...entry.colour, 255]),
                edge: paint(innerEdge(entry.mask, thickness), [...entry.colour.map((c) => Math.min(255, c + 40)), 255])};
      this.painted.set(entry.mask, cached);
    }
    return cached;
  }

  drawPrompts() {
    const canvas = this.layers.prompt;
    const ctx = canvas.getContext('2d');
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!this.image) return;
    const d = this.density;
    const {points, box, pending} = this.prompts;
    const boxes = [box, this.drag && this.drag.box, pending && pending.box].filter(Boolean);
    for (const [x0, y0, x1, y1] of boxes) {  // white dashes on a dark line: visible on any photo
      ctx.lineWidth = 3.5 * d;
      ctx.strokeStyle = 'rgba(0, 0, 0, 0.55)';
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      ctx.lineWidth = 2 * d;
      ctx.setLineDash([7 * d, 5 * d]);
      ctx.strokeStyle = '#fff';
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      ctx.setLineDash([]);
    }
    const all = pending && pending.point ? [...points, {...pending.point, pending: true}] : points;
    for (const point of all) drawPoint(ctx, point, d);
    if (this.cursor && this.interactive) {
      const {x, y} = this.cursor;
      ctx.strokeStyle = '#fff';
      ctx.lineWidth = 1.5 * d;
      ctx.beginPath();
      ctx.moveTo(x - 12 * d, y);
      ctx.lineTo(x + 12 * d, y);
      ctx.moveTo(x, y - 12 * d);
      ctx.lineTo(x, y + 12 * d);
      ctx.stroke();
    }
  }

  /** Screen position of a pointer event → image px, clamped to the image. */
  toImage(event) {
    const rect = this.box.getBoundingClientRect();
    const {width, height} = this.image.sent;
    const x = Math.min(width, Math.max(0, ((event.clientX - rect.left) / rect.width) * width));
    const y = Math.min(height, Math.max(0, ((event.clientY - rect.top) / rect.height) * height));
    return {x: Math.round(x * 10) / 10, y: Math.round(y * 10) / 10};
  }

  listen() {
    const surface = this.layers.prompt;
    surface.addEventListener('contextmenu', (event) => event.preventDefault());
    surface.addEventListener('pointerdown', (event) => {
      if (!this.interactive || !this.image || event.button > 2 || event.button === 1) return;
      surface.setPointerCapture(event.pointerId);
      this.drag = {start: this.toImage(event), screen: [event.clientX, event.clientY], box: null,
                   negative: event.button === 2 || event.altKey || event.shiftKey};
    });
    surface.addEventListener('pointermove', (event) => {
      if (this.image && !this.drag) this.onHover(this.toImage(event));
      if (!this.drag) return;
      const moved = Math.hypot(event.clientX - this.drag.screen[0], event.clientY - this.drag.screen[1]);
      if (moved > DRAG_PX || this.drag.box) {
        const a = this.drag.start;
        const b = this.toImage(event);
        this.drag.box = [Math.min(a.x, b.x), Math.min(a.y, b.y), Math.max(a.x, b.x), Math.max(a.y, b.y)];
        this.drawPrompts();
      }
    });
    surface.addEventListener('pointerup', () => {
      const drag = this.drag;
      this.drag = null;
      if (!drag) return;
      if (drag.box) {
        const [x0, y0, x1, y1] = drag.box;
        if (x1 - x0 >= 1 && y1 - y0 >= 1) this.onBox(drag.box, drag.negative);
        this.drawPrompts();
      } else {
        this.onPoint({...drag.start, label: drag.negative ? 0 : 1});
      }
    });
    surface.addEventListener('pointerleave', () => this.onHover(null));
    surface.addEventListener('pointercancel', () => {
      this.drag = null;
      this.drawPrompts();
    });
    this.root.addEventListener('keydown', (event) => this.onKey(event));
    this.root.addEventListener('blur', () => {
      this.cursor = null;
      this.drawPrompts();
    });
  }

  // Keyboard clicking: arrows move a cursor (Shift: faster), Enter adds an object point, Shift+Enter a "not" point.
  onKey(event) {
    if (!this.interactive || !this.image) return;
    if (event.key === 'Escape' && this.drag) {  // cancel the box being drawn
      this.drag = null;
      this.drawPrompts();
      return;
    }
    const {width, height} = this.image.sent;
    const step = (event.shiftKey ? 40 : 8) * this.density;
    const moves = {ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step]};
    if (moves[event.key]) {
      event.preventDefault();
      const at = this.cursor || {x: width / 2, y: height / 2};
      const [dx, dy] = moves[event.key];
      this.cursor = {x: Math.min(width, Math.max(0, at.x + dx)), y: Math.min(height, Math.max(0, at.y + dy))};
      this.drawPrompts();
    } else if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      const at = this.cursor || {x: width / 2, y: height / 2};
      this.cursor = at;
      this.onPoint({x: Math.round(at.x * 10) / 10, y: Math.round(at.y * 10) / 10, label: event.shiftKey ? 0 : 1});
    }
  }
}

function drawPoint(ctx, {x, y, label, pending}, d) {
  const r = 8 * d;
  ctx.globalAlpha = pending ? 0.55 : 1;
  ctx.beginPath();
  ctx.arc(x, y, r, 0, 2 * Math.PI);
  ctx.fillStyle = POINT_COLOURS[label];
  ctx.fill();
  ctx.lineWidth = 2 * d;
  ctx.strokeStyle = '#fff';
  ctx.stroke();
  ctx.beginPath();  // + for an object point, − for a "not" point
  ctx.moveTo(x - r * 0.5, y);
  ctx.lineTo(x + r * 0.5, y);
  if (label === 1) {
    ctx.moveTo(x, y - r * 0.5);
    ctx.lineTo(x, y + r * 0.5);
  }
  ctx.stroke();
  ctx.globalAlpha = 1;
}
