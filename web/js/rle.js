// COCO run-length encoding, as pycocotools writes it: runs down the columns (Fortran order), starting with a run of
// zeros; `counts` is either pycocotools' compressed string or a plain list of run lengths.

/** {size: [h, w], counts} → {mask: Uint8Array (row-major, 1 inside), width, height}. */
export function decodeRle(rle) {
  const [height, width] = rle.size;
  const runs = typeof rle.counts === 'string' ? parseCounts(rle.counts) : rle.counts;
  const mask = new Uint8Array(width * height);
  let at = 0;
  let inside = false;
  for (const run of runs) {
    if (inside) {
      for (let k = at; k < at + run; k++) {
        const x = Math.floor(k / height);
        mask[(k - x * height) * width + x] = 1;
      }
    }
    at += run;
    inside = !inside;
  }
  if (at !== width * height) throw new Error(`the mask's runs cover ${at} pixels, not ${width}x${height}`);
  return {mask, width, height};
}

/** pycocotools' rleFrString: 5 bits per character, a continuation bit, deltas against the run two back. */
function parseCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let value = 0;
    let k = 0;
    let more = true;
    while (more) {
      const c = text.charCodeAt(p) - 48;
      value += (c & 0x1f) * 2 ** (5 * k);  // arithmetic, not bit shifts: JS shifts wrap at 32 bits
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && (c & 0x10)) value -= 2 ** (5 * k);
    }
    if (counts.length > 2) value += counts[counts.length - 2];
    counts.push(value);
  }
  return counts;
}
