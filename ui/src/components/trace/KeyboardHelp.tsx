// The timeline's keys, shown by `?`.
export const KEYS: [string, string][] = [
  ['↑ / ↓', 'Select the previous / next span'],
  ['←', 'Collapse the span, or go to its parent'],
  ['→', 'Expand the span, or go to its first child'],
  ['Enter', 'Show / hide the span’s details'],
  ['/', 'Search in the trace'],
  ['Enter / Shift+Enter', 'Next / previous match (in the search box)'],
  ['Esc', 'Close details, help or the search'],
  ['?', 'Show / hide this help'],
];

export default function KeyboardHelp({ onClose }: { onClose: () => void }) {
  return (
    <div className="keyboard-help" role="dialog" aria-label="Keyboard shortcuts">
      <header>
        <h2>Keyboard shortcuts</h2>
        <button type="button" className="small" onClick={onClose} aria-label="Close help">✕</button>
      </header>
      <table>
        <tbody>
          {KEYS.map(([keys, what]) => (
            <tr key={keys}><th scope="row"><kbd>{keys}</kbd></th><td>{what}</td></tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
