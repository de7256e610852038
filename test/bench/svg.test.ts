// tapnet bench's SVG chart.
import { describe, expect, it } from "vitest";
import { FIGURES } from "../../src/bench/figures.ts";
import { renderSvg } from "../../src/bench/svg.ts";
import { report } from "./sample.ts";

describe("the SVG chart", () => {
  it("the SVG: well-formed, one bar per setup and figure with a ratio, the 1× line, labels escaped", () => {
    const r = report();
    r.setups = [...r.setups];
    r.date = "A<B&C";
    const svg = renderSvg(r);
    expect(svg).toContain("A&lt;B&amp;C");
    expect(svg.startsWith("<svg xmlns=\"http://www.w3.org/2000/svg\"")).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    // figures with a ratio: all but the switch's eight (four, and its share of four CPU costs:
    // the kernel has no switch) and the two losses
    const bars = svg.match(/<rect x="\d+" y="[\d.]+" width="[\d.]+" height="14"/g) ?? [];
    expect(bars).toHaveLength((FIGURES.length - 10) * 3);
    expect(svg).toContain("CPU per Gbit/s, TCP across nodes, 1 stream");
    expect(svg).not.toContain("of which the switches");
    expect(svg).not.toContain("UDP 1400 B loss");
    expect(svg).toContain(">0.64×</text>");
    expect(svg).toContain("ratio to kernel-vxlan (= 1)");
    expect(svg).toContain('stroke="#000"'); // the 1× line
    expect(svg).not.toMatch(/<(?!\/?(svg|rect|text|line|title)\b)/); // only the elements it means to write
    // every tag opened is closed
    for (const tag of ["text", "title"]) expect((svg.match(new RegExp(`<${tag}[ >]`, "g")) ?? []).length).toBe((svg.match(new RegExp(`</${tag}>`, "g")) ?? []).length);
  });
});
