// Masks as the server sends them (seglab.workbench.masks): {bbox: [x, y, w, h], counts: [off, on, off, ...]}
// over the bbox crop read row by row. In the page a mask is {x, y, w, h, data: Uint8Array(w * h)}.
"use strict";

const RLE = {
  decode(rle) {
    const [x, y, w, h] = rle.bbox;
    const data = new Uint8Array(w * h);
    let pos = 0, on = 0;
    for (const n of rle.counts) {
      if (on) data.fill(1, pos, pos + n);
      pos += n; on ^= 1;
    }
    return { x, y, w, h, data };
  },

  encode(m) {
    const t = RLE.tight(m);
    if (!t) return { bbox: [0, 0, 0, 0], counts: [] };
    const counts = [];
    let run = 0, cur = 0;
    for (let i = 0; i < t.data.length; i++) {
      const v = t.data[i];
      if (v !== cur) { counts.push(run); run = 0; cur = v; }
      run++;
    }
    counts.push(run);
    return { bbox: [t.x, t.y, t.w, t.h], counts };
  },

  // the same mask cropped to its pixels (null when empty)
  tight(m) {
    let x0 = m.w, y0 = m.h, x1 = -1, y1 = -1;
    for (let r = 0; r < m.h; r++) {
      const row = r * m.w;
      for (let c = 0; c < m.w; c++) {
        if (m.data[row + c]) {
          if (c < x0) x0 = c; if (c > x1) x1 = c;
          if (r < y0) y0 = r; y1 = r;
        }
      }
    }
    if (x1 < 0) return null;
    const w = x1 - x0 + 1, h = y1 - y0 + 1, data = new Uint8Array(w * h);
    for (let r = 0; r < h; r++) data.set(m.data.subarray((y0 + r) * m.w + x0, (y0 + r) * m.w + x0 + w), r * w);
    return { x: m.x + x0, y: m.y + y0, w, h, data };
  },

  // full-image W x H Uint8Array of a mask
  toFull(m, W, H) {
    const out = new Uint8Array(W * H);
    for (let r = 0; r < m.h; r++) out.set(m.data.subarray(r * m.w, (r + 1) * m.w), (m.y + r) * W + m.x);
    return out;
  },

  fromFull(full, W, H) { return RLE.tight({ x: 0, y: 0, w: W, h: H, data: full }); },

  contains(m, px, py) {
    const c = px - m.x, r = py - m.y;
    return c >= 0 && r >= 0 && c < m.w && r < m.h && m.data[r * m.w + c] === 1;
  },

  area(m) { let n = 0; for (const v of m.data) n += v; return n; },
};
