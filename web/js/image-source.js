// Turning a file, a paste, a drop or a URL into what the page shows and what it sends.
//
// Large photos are downscaled here, in the browser, to at most `maxSide` px on the long side (2048 by default) and
// sent as JPEG: a 12-megapixel phone photo in base64 JSON would be over SageMaker's 6 MB payload limit, and SAM2
// works at 1024 px inside anyway. Masks come back at the sent size; downloads map them back to the full size.
// An image that already fits (and is JPEG, PNG or WebP of at most MAX_SENT_BYTES) is sent as its own bytes.

export const DEFAULT_MAX_SIDE = 2048;
// base64 adds a third: 4.5 MB of image stays under the 6 MB request limit with room for the JSON around it.
const MAX_SENT_BYTES = 4_500_000;
const PASSTHROUGH_TYPES = new Set(['image/jpeg', 'image/png', 'image/webp']);

/**
 * What the page knows of one image.
 * - name: for download file names
 * - original: {width, height, source}: the upright full-size picture (an ImageBitmap or an <img>)
 * - sent: {width, height, scale}: the image the endpoint sees (scale = sent / original)
 * - display: a drawable at the sent size
 * - payload: the request fields that carry the image ({image} or {image_url})
 * - readable: whether the page may read the pixels (false for a URL the endpoint fetched itself)
 */
export class LoadedImage {
  constructor(fields) {
    Object.assign(this, fields);
  }

  get downscaled() {
    return this.sent.scale < 1;
  }
}

export async function imageFromBlob(blob, name, maxSide) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);  // applies the EXIF orientation, as the endpoint does
  } catch {
    throw new Error(`${name} is not an image this browser can read (JPEG, PNG, WebP, GIF, BMP).`);
  }
  const {width, height} = bitmap;
  let scale = Math.min(1, maxSide / Math.max(width, height));
  if (scale === 1 && blob.size <= MAX_SENT_BYTES && PASSTHROUGH_TYPES.has(blob.type)) {
    return new LoadedImage({
      name, original: {width, height, source: bitmap}, sent: {width, height, scale: 1}, display: bitmap,
      payload: {image: await base64(blob)}, readable: true,
    });
  }
  for (;;) {
    const canvas = drawScaled(bitmap, scale);
    for (const quality of [0.92, 0.8]) {
      const jpeg = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', quality));
      if (jpeg.size <= MAX_SENT_BYTES) {
        return new LoadedImage({
          name, original: {width, height, source: bitmap},
          sent: {width: canvas.width, height: canvas.height, scale: canvas.width / width}, display: canvas,
          payload: {image: await base64(jpeg)}, readable: true,
        });
      }
    }
    scale *= 0.75;
  }
}

/**
 * A URL: read by the page when its host allows that (CORS), then handled like a file. Otherwise the endpoint
 * fetches it itself (`image_url`: public addresses only) and the page only shows it, so it cannot make cut-outs.
 */
export async function imageFromUrl(url, maxSide) {
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop() || 'image');
  let response;
  try {
    response = await fetch(url, {mode: 'cors', credentials: 'omit'});
  } catch {
    response = null;  // not readable from this page: let the endpoint fetch it
  }
  if (response) {
    if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}.`);
    return imageFromBlob(await response.blob(), name, maxSide);
  }
  const img = new Image();
  img.src = url;
  try {
    await img.decode();
  } catch {
    throw new Error(`Could not load ${url} in this page either: check the address.`);
  }
  const {naturalWidth: width, naturalHeight: height} = img;
  return new LoadedImage({
    name, original: {width, height, source: img}, sent: {width, height, scale: 1}, display: img,
    payload: {image_url: url}, readable: false,
  });
}

function drawScaled(bitmap, scale) {
  const canvas = document.createElement('canvas');
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';  // JPEG has no alpha: transparent parts become white, not black
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return canvas;
}

function base64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(',', 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}
