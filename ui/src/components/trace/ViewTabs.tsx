// The trace page's views of the same trace.
export const VIEWS = [
  ['timeline', 'Timeline'],
  ['table', 'Span table'],
  ['statistics', 'Statistics'],
  ['flamegraph', 'Flame graph'],
  ['graph', 'Trace graph'],
] as const;

export type ViewName = (typeof VIEWS)[number][0];

export function viewName(text: string | null): ViewName {
  return VIEWS.find(([name]) => name === text)?.[0] ?? 'timeline';
}

export default function ViewTabs({ view, onChange }: { view: ViewName; onChange: (view: ViewName) => void }) {
  return (
    <div className="view-tabs" role="tablist" aria-label="Trace views">
      {VIEWS.map(([name, label]) => (
        <button key={name} type="button" role="tab" aria-selected={view === name}
          className={view === name ? 'active' : ''} onClick={() => onChange(name)}>
          {label}
        </button>
      ))}
    </div>
  );
}
