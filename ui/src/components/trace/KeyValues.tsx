// Tags and log fields as a key/value table, each value styled by its type so strings, numbers,
// booleans and binary read differently.
import type { KeyValue } from '../../model/jaeger';

export default function KeyValues({ items, label }: { items: KeyValue[]; label: string }) {
  if (!items.length) return <p className="muted">None</p>;
  return (
    <table className="kv" aria-label={label}>
      <tbody>
        {items.map((kv, i) => (
          <tr key={i}>
            <th scope="row">{kv.key}</th>
            <td><TypedValue kv={kv} /></td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function TypedValue({ kv }: { kv: KeyValue }) {
  const kind = kv.type === 'int64' || kv.type === 'float64' ? 'number' : kv.type;
  return (
    <span className={`kv-value kv-${kind}`} data-type={kv.type} title={kv.type}>
      {kv.type === 'string' ? kv.value : String(kv.value)}
    </span>
  );
}
