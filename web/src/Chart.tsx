// Charts with uPlot: time series (mail flow) and bars (threats by level). Drawn on a canvas, so nothing
// from the data is ever interpreted as markup.
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const COLORS = ['#2563eb', '#16a34a', '#d97706', '#dc2626', '#7c3aed', '#0891b2', '#4b5563'];

export function TimeChart(props: { title: string; x: number[]; series: Array<{ label: string; values: number[] }> }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const plot = new uPlot(
      {
        title: props.title,
        width: Math.max(320, el.current.clientWidth || 640),
        height: 220,
        series: [{}, ...props.series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2 }))],
        axes: [{}, { size: 50 }],
      },
      [props.x, ...props.series.map((s) => s.values)],
      el.current,
    );
    return () => plot.destroy();
  }, [props.title, props.x, props.series]);
  return <div className="chart" ref={el} role="img" aria-label={props.title} />;
}

export function BarChart(props: { title: string; labels: string[]; values: number[] }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const bars = uPlot.paths.bars!({ size: [0.6, 60] });
    const plot = new uPlot(
      {
        title: props.title,
        width: Math.max(320, el.current.clientWidth || 480),
        height: 220,
        scales: { x: { time: false } },
        series: [{}, { label: 'messages', stroke: COLORS[3], fill: COLORS[3] + '88', paths: bars }],
        axes: [{ values: (_u, ticks) => ticks.map((t) => props.labels[t] ?? '') }, { size: 50 }],
      },
      [props.labels.map((_, i) => i), props.values],
      el.current,
    );
    return () => plot.destroy();
  }, [props.title, props.labels, props.values]);
  return <div className="chart" ref={el} role="img" aria-label={props.title} />;
}
