// Binary masks as the page keeps them: {mask: Uint8Array (row-major, 1 inside), width, height}.

/** The pixels of `m` within `thickness` px (square neighbourhood) of a pixel outside it: its inner outline. */
export function innerEdge(m, thickness) {
  const {mask, width, height} = m;
  const rows = erodeLines(mask, height, width, 1, width, thickness);
  const eroded = erodeLines(rows, width, height, width, 1, thickness);
  const edge = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) edge[i] = mask[i] & (1 - eroded[i]);
  return {mask: edge, width, height};
}

const FAR = 2 ** 30;

// A pixel survives when no pixel outside the mask lies within `t` of it along its line (lines of `length` pixels
// `step` apart, starting `lineStep` apart: rows or columns). Beyond the image border counts as inside, so a mask
// touching the border has no outline along it.
function erodeLines(mask, lines, length, step, lineStep, t) {
  const out = new Uint8Array(mask.length);
  const nextOutside = new Int32Array(length);
  for (let line = 0; line < lines; line++) {
    const start = line * lineStep;
    let upcoming = FAR;
    for (let k = length - 1; k >= 0; k--) {
      if (!mask[start + k * step]) upcoming = k;
      nextOutside[k] = upcoming;
    }
    let lastOutside = -FAR;
    for (let k = 0; k < length; k++) {
      const i = start + k * step;
      if (!mask[i]) lastOutside = k;
      out[i] = mask[i] && k - lastOutside > t && nextOutside[k] - k > t ? 1 : 0;
    }
  }
  return out;
}

/** The union of masks of one size (null when there are none). */
export function union(masks) {
  if (!masks.length) return null;
  const {width, height} = masks[0];
  const out = new Uint8Array(width * height);
  for (const m of masks) for (let i = 0; i < out.length; i++) out[i] |= m.mask[i];
  return {mask: out, width, height};
}

/** [x0, y0, x1, y1] on pixel edges (x1, y1 exclusive), or null for an empty mask. */
export function boundingBox({mask, width, height}) {
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (mask[y * width + x]) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        y1 = y;
      }
    }
  }
  return x1 < 0 ? null : [x0, y0, x1 + 1, y1 + 1];
}

/** A canvas of the mask's size: `rgba` ([r, g, b, a], 0-255) inside the mask, transparent outside. */
export function paint({mask, width, height}, rgba) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(width, height);
  const px = image.data;
  for (let i = 0; i < mask.length; i++) {
    if (mask[i]) px.set(rgba, i * 4);
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

/**
 * The mask at another size: drawn smoothly scaled and thresholded at half coverage, so the edges of a mask made on
 * the downscaled image are interpolated rather than blocky. The same size gives an exact copy.
 */
export function resize(m, width, height) {
  if (m.width === width && m.height === height) return {mask: m.mask.slice(), width, height};
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(paint(m, [255, 255, 255, 255]), 0, 0, width, height);
  const px = ctx.getImageData(0, 0, width, height).data;
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) out[i] = px[i * 4 + 3] >= 128 ? 1 : 0;
  return {mask: out, width, height};
}
