// decodeRle against masks pycocotools encoded (pycocotools.mask.encode 2.0.11 of the arrays written here).
import assert from 'node:assert/strict';
import {test} from 'node:test';

import {decodeRle} from '../../web/js/rle.js';

const SMALL = [[0, 1, 1, 0], [0, 1, 0, 0], [1, 1, 0, 1]];
const RANDOM = [  // 7x9: its compressed counts have negative deltas (runs shorter than the run two back)
  [0, 0, 1, 1, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 1, 1, 0, 1], [1, 0, 0, 1, 0, 0, 1, 1, 0],
  [1, 0, 1, 0, 0, 1, 1, 0, 1], [0, 1, 1, 0, 1, 1, 1, 1, 0], [1, 1, 0, 1, 0, 0, 0, 1, 0],
  [1, 0, 1, 0, 1, 0, 0, 1, 1],
];

function rows({mask, width, height}) {
  return Array.from({length: height}, (_, y) => Array.from(mask.subarray(y * width, (y + 1) * width)));
}

test('compressed counts decode row-major, the runs going down the columns', () => {
  const decoded = decodeRle({size: [3, 4], counts: '254L'});
  assert.equal(decoded.width, 4);
  assert.equal(decoded.height, 3);
  assert.deepEqual(rows(decoded), SMALL);
});

test('a plain list of runs decodes the same', () => {
  // columns top to bottom: 0 0 1 | 1 1 1 | 1 0 0 | 0 0 1 → runs 2 zeros, 5 ones, 4 zeros, 1 one
  assert.deepEqual(rows(decodeRle({size: [3, 4], counts: [2, 5, 4, 1]})), SMALL);
});

test('negative deltas in the compressed string', () => {
  assert.deepEqual(rows(decodeRle({size: [7, 9], counts: '221030MO11O00O100000O00001221MM40L10'})), RANDOM);
});

test('a mask starting inside begins with an empty run of zeros', () => {
  assert.deepEqual(rows(decodeRle({size: [2, 3], counts: '06'})), [[1, 1, 1], [1, 1, 1]]);
  assert.deepEqual(rows(decodeRle({size: [2, 3], counts: [0, 6]})), [[1, 1, 1], [1, 1, 1]]);
});

test('runs of millions of pixels (several characters each) decode exactly', () => {
  // 1500x2000: columns 300..1799 full, plus the first and the last pixel; runs 0, 1, 449999, 2250000, 299999, 1
  const {mask, width, height} = decodeRle({size: [1500, 2000], counts: '01_^g=_XeT2``]KagZkM'});
  assert.equal(width, 2000);
  assert.equal(height, 1500);
  const at = (y, x) => mask[y * width + x];
  assert.equal(mask.reduce((sum, v) => sum + v, 0), 2_250_002);
  assert.deepEqual([at(0, 0), at(1, 0), at(0, 299), at(0, 300), at(1499, 1799), at(1499, 1800), at(1499, 1999)],
                   [1, 0, 0, 1, 1, 0, 1]);
});

test('runs that do not cover the image are refused', () => {
  assert.throws(() => decodeRle({size: [2, 2], counts: [1, 2]}), /cover 3 pixels, not 2x2/);
  assert.throws(() => decodeRle({size: [2, 2], counts: [1, 4]}), /cover 5 pixels/);
});
