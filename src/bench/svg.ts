/**
 * The bench's chart: every figure's ratio to the reference as horizontal bars, one per setup,
 * as a standalone SVG (`tapnet bench --svg FILE`).
 */
import { FIGURES, fmtNumber } from "./figures.ts";
import type { BenchReport } from "./report.ts";

function xml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

const COLORS = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d", "#bab0ac"];

/**
 * A horizontal bar chart of every figure's ratio to the reference, one bar per setup. Loss is
 * left to the table: a ratio to a loss near 0 says nothing. Bars past the axis are cut, with
 * their value written.
 */
export function renderSvg(r: BenchReport): string {
  const figures = FIGURES.filter((f) => !f.key.endsWith("_loss") && r.setups.some((s) => r.ratios[s]?.[f.key] != null));
  const setups = r.setups;
  const barH = 14, gap = 4, groupGap = 18, left = 290, chartW = 460, top = 70;
  const axisMax = Math.min(4, Math.max(2, Math.ceil(Math.max(0, ...setups.flatMap((s) => figures.map((f) => r.ratios[s]?.[f.key] ?? 0))) * 2) / 2));
  const scale = chartW / axisMax;
  const groupH = setups.length * (barH + gap) + groupGap;
  const height = top + figures.length * groupH + 30 + setups.length * 18;
  const width = left + chartW + 90;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="10" y="22" font-size="16" font-weight="bold">tapnet bench: each figure as a ratio to ${xml(r.reference)} (= 1)</text>`);
  out.push(`<text x="10" y="42" fill="#555">${xml(`${r.date}, ${r.machine.kernel}, ${r.machine.nproc} CPUs, ${r.rounds} round(s) of ${r.seconds} s; median of rounds; loss is in the table`)}</text>`);
  for (let x = 0; x <= axisMax + 1e-9; x += 0.5) {
    const px = left + x * scale;
    out.push(`<line x1="${px}" y1="${top - 8}" x2="${px}" y2="${top + figures.length * groupH - groupGap}" stroke="${x === 1 ? "#000" : "#ddd"}" stroke-width="${x === 1 ? 1.5 : 1}"/>`);
    out.push(`<text x="${px}" y="${top - 12}" text-anchor="middle" fill="#555">${x}×</text>`);
  }
  figures.forEach((f, i) => {
    const y0 = top + i * groupH;
    out.push(`<text x="${left - 8}" y="${y0 + 12}" text-anchor="end" font-weight="bold">${xml(f.label)}</text>`);
    out.push(`<text x="${left - 8}" y="${y0 + 26}" text-anchor="end" fill="#777">${xml(`${f.unit}, ${f.better} is better`)}</text>`);
    setups.forEach((s, j) => {
      const ratio = r.ratios[s]?.[f.key];
      const y = y0 + j * (barH + gap);
      if (ratio == null) {
        out.push(`<text x="${left + 4}" y="${y + barH - 3}" fill="#999">n/a</text>`);
        return;
      }
      const w = Math.max(1, Math.min(ratio, axisMax) * scale);
      out.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${COLORS[j % COLORS.length]}"><title>${xml(`${s}: ${fmtNumber(r.medians[s][f.key]!)} ${f.unit} (${ratio.toFixed(2)}×)`)}</title></rect>`);
      out.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + barH - 3}">${ratio > axisMax ? "» " : ""}${ratio.toFixed(2)}×</text>`);
    });
  });
  const ly = top + figures.length * groupH + 10;
  setups.forEach((s, j) => {
    out.push(`<rect x="${left}" y="${ly + j * 18}" width="12" height="12" fill="${COLORS[j % COLORS.length]}"/>`);
    out.push(`<text x="${left + 18}" y="${ly + j * 18 + 11}">${xml(s)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
