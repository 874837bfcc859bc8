/**
 * Time-series plots for the soak and fault runs (docs/reliability.md), drawn by charting
 * libraries rather than by hand: a Vega-Lite spec, compiled to Vega and rendered headless
 * to SVG (vega View.toSVG), then rasterised to PNG by resvg.
 * Why these: vega / vega-lite are the UW Interactive Data Lab's declarative grammar, released
 * through 2025-26, pure JavaScript (no native canvas build, view.toSVG() needs no DOM);
 * @resvg/resvg-js ships prebuilt binaries for linux-x64 (no node-gyp, no browser) and is
 * maintained (2.x line, alphas of 2.7 in 2026). Headless Chromium would work too but adds a
 * browser start per plot.
 */
import { writeFileSync } from 'node:fs';
import { compile, type TopLevelSpec } from 'vega-lite';
import { parse, View } from 'vega';
import { Resvg } from '@resvg/resvg-js';

/** One row per (t, series): long format, one small chart per panel. */
export interface Point {
  /** minutes (or seconds) since the start */
  t: number;
  panel: string;
  series: string;
  value: number;
}

/** Panels stacked vertically, each with its own y scale; writes `<file>.svg` and `<file>.png`. */
export async function plotSeries(points: readonly Point[], o: { file: string; title: string; xTitle: string }): Promise<void> {
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: o.title,
    data: { values: points.filter((p) => Number.isFinite(p.value)) as unknown as Record<string, unknown>[] },
    facet: { row: { field: 'panel', type: 'nominal', title: null, header: { labelAngle: 0, labelAlign: 'left', labelFontSize: 12 } } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 720,
      height: 110,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 't', type: 'quantitative', title: o.xTitle },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false }, axis: { format: '~g' } },
        color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 400 } },
      },
    },
    config: { background: 'white' },
  };
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  writeFileSync(`${o.file}.svg`, svg);
  const png = new Resvg(svg, { background: 'white', fitTo: { mode: 'zoom', value: 1.5 } }).render().asPng();
  writeFileSync(`${o.file}.png`, png);
}
