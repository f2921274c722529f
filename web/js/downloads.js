// Downloads, always at the ORIGINAL image's size (masks made on a downscaled copy are mapped back first).

import {boundingBox, resize} from './masks.js';

/** A black-and-white PNG, white inside the mask, as large as the original image. */
export async function maskPng(image, mask) {
  const full = resize(mask, image.original.width, image.original.height);
  const canvas = document.createElement('canvas');
  canvas.width = full.width;
  canvas.height = full.height;
  const ctx = canvas.getContext('2d');
  const out = ctx.createImageData(full.width, full.height);
  for (let i = 0; i < full.mask.length; i++) {
    const v = full.mask[i] ? 255 : 0;
    out.data[i * 4] = out.data[i * 4 + 1] = out.data[i * 4 + 2] = v;
    out.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  return toPng(canvas);
}

/** The original pixels inside the mask, transparent elsewhere, cropped to the mask's box. Null for an empty mask. */
export async function cutoutPng(image, mask) {
  const full = resize(mask, image.original.width, image.original.height);
  const box = boundingBox(full);
  if (!box) return null;
  const [x0, y0, x1, y1] = box;
  const canvas = document.createElement('canvas');
  canvas.width = x1 - x0;
  canvas.height = y1 - y0;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  ctx.drawImage(image.original.source, x0, y0, canvas.width, canvas.height, 0, 0, canvas.width, canvas.height);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
  for (let y = 0; y < canvas.height; y++) {
    for (let x = 0; x < canvas.width; x++) {
      if (!full.mask[(y + y0) * full.width + x + x0]) pixels.data[(y * canvas.width + x) * 4 + 3] = 0;
    }
  }
  ctx.putImageData(pixels, 0, 0);
  return toPng(canvas);
}

export function jsonBlob(value) {
  return new Blob([JSON.stringify(value, null, 2)], {type: 'application/json'});
}

/** Hands `blob` to the browser as a download named `name`. */
export function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function toPng(canvas) {
  return new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
}
