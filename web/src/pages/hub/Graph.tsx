// The sender–target relationship graph of an investigation, drawn with cytoscape (loaded only on this
// page). A node is an observable: tapping it (or pressing its button in the list under the graph, for
// the keyboard) investigates it.
import { useEffect, useRef } from 'react';

export interface GraphData {
  nodes: Array<{
    id: string;
    type: string;
    label: string;
    messages: number;
    investigated: boolean;
    maxThreatLevel: number;
  }>;
  edges: Array<{ source: string; target: string; kind: string; messages: number }>;
  truncated: boolean;
}

const COLORS: Record<string, string> = {
  email: '#2563eb',
  ip: '#7c3aed',
  domain: '#0891b2',
  sha256: '#b45309',
  url_domain: '#059669',
};

export function Graph({ data, onPick }: { data: GraphData; onPick: (id: string) => void }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    let cy: { destroy(): void } | null = null;
    let live = true;
    void import('cytoscape').then(({ default: cytoscape }) => {
      if (!live || !box.current) return;
      const c = cytoscape({
        container: box.current,
        // a small graph is not blown up to fill the frame
        maxZoom: 1.4,
        minZoom: 0.2,
        elements: [
          ...data.nodes.map((n) => ({ data: { ...n, size: 18 + Math.min(40, Math.sqrt(n.messages) * 6) } })),
          ...data.edges.map((e, i) => ({ data: { id: `e${i}`, ...e } })),
        ],
        layout: { name: 'cose', animate: false, nodeRepulsion: () => 9000, idealEdgeLength: () => 90 },
        style: [
          {
            selector: 'node',
            style: {
              label: 'data(label)',
              'font-size': 10,
              width: 'data(size)',
              height: 'data(size)',
              'background-color': (n: any) => COLORS[n.data('type')] ?? '#64748b',
              'border-width': (n: any) => (n.data('maxThreatLevel') >= 3 ? 4 : n.data('investigated') ? 3 : 0),
              'border-color': (n: any) => (n.data('maxThreatLevel') >= 3 ? '#dc2626' : '#0f172a'),
              'text-valign': 'bottom',
              'text-margin-y': 4,
            },
          },
          {
            selector: 'edge',
            style: {
              width: (e: any) => 1 + Math.min(6, Math.log2(1 + e.data('messages'))),
              'line-color': '#cbd5e1',
              'target-arrow-color': '#cbd5e1',
              'target-arrow-shape': 'triangle',
              'curve-style': 'bezier',
            },
          },
        ],
      });
      c.on('tap', 'node', (ev) => onPick(ev.target.id() as string));
      cy = c;
      box.current.dataset.ready = 'true';
    });
    return () => {
      live = false;
      cy?.destroy();
    };
  }, [data, onPick]);
  return (
    <figure className="graph">
      <div ref={box} className="graph-canvas" role="img" aria-label="relationship graph" />
      <figcaption className="muted">
        Senders and recipients (blue), IPs (violet), domains (teal), attachments (amber), linked domains (green); a red
        ring: threat level 3 or more. {data.truncated ? 'Only the most connected nodes are drawn.' : ''}
      </figcaption>
    </figure>
  );
}
