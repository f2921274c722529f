// The canvas-free mask helpers: outline, union, bounding box (paint and resize draw on a canvas: the browser tests').
import assert from 'node:assert/strict';
import {test} from 'node:test';

import {boundingBox, innerEdge, resize, union} from '../../web/js/masks.js';

function fromRows(rows) {
  return {mask: Uint8Array.from(rows.flat()), width: rows[0].length, height: rows.length};
}

function rows({mask, width, height}) {
  return Array.from({length: height}, (_, y) => Array.from(mask.subarray(y * width, (y + 1) * width)));
}

test('the inner outline of a square is its border ring, as thick as asked', () => {
  const square = fromRows([
    [0, 0, 0, 0, 0, 0, 0],
    [0, 1, 1, 1, 1, 1, 0],
    [0, 1, 1, 1, 1, 1, 0],
    [0, 1, 1, 1, 1, 1, 0],
    [0, 1, 1, 1, 1, 1, 0],
    [0, 1, 1, 1, 1, 1, 0],
    [0, 0, 0, 0, 0, 0, 0],
  ]);
  assert.deepEqual(rows(innerEdge(square, 1)), [
    [0, 0, 0, 0, 0, 0, 0],
    [0, 1, 1, 1, 1, 1, 0],
    [0, 1, 0, 0, 0, 1, 0],
    [0, 1, 0, 0, 0, 1, 0],
    [0, 1, 0, 0, 0, 1, 0],
    [0, 1, 1, 1, 1, 1, 0],
    [0, 0, 0, 0, 0, 0, 0],
  ]);
  const thick = rows(innerEdge(square, 2));
  assert.equal(thick[3][3], 0);  // only the centre is 3 px from outside
  assert.equal(thick.flat().reduce((a, b) => a + b), 24);
});

test('a mask touching the image border has no outline along it', () => {
  const full = fromRows([[1, 1, 1], [1, 1, 1], [1, 1, 1]]);
  assert.deepEqual(rows(innerEdge(full, 1)), [[0, 0, 0], [0, 0, 0], [0, 0, 0]]);
});

test('union of masks, and null for none', () => {
  const a = fromRows([[1, 0], [0, 0]]);
  const b = fromRows([[0, 0], [0, 1]]);
  assert.deepEqual(rows(union([a, b])), [[1, 0], [0, 1]]);
  assert.equal(union([]), null);
});

test('bounding box on pixel edges, exclusive at the far side; null when empty', () => {
  assert.deepEqual(boundingBox(fromRows([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])), [1, 1, 3, 3]);
  assert.equal(boundingBox(fromRows([[0, 0], [0, 0]])), null);
});

test('resizing to the same size is an exact copy, not the same array', () => {
  const m = fromRows([[1, 0], [0, 1]]);
  const copy = resize(m, 2, 2);
  assert.deepEqual(rows(copy), rows(m));
  assert.notEqual(copy.mask, m.mask);
});
