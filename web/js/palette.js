// Distinct, saturated colours that read on photos, in a fixed order (mask i gets colour i).
const PALETTE = [
  [59, 130, 246], [249, 115, 22], [16, 185, 129], [236, 72, 153], [234, 179, 8],
  [139, 92, 246], [6, 182, 212], [239, 68, 68], [132, 204, 22], [99, 102, 241],
];

export function colourAt(index) {
  return PALETTE[index % PALETTE.length];
}

export function cssColour([r, g, b]) {
  return `rgb(${r}, ${g}, ${b})`;
}
