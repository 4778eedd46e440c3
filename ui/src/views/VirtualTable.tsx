// A sortable table whose body is virtualized, so 40,000 rows cost only the ~30 on screen.
// ARIA table roles on a CSS grid (a real <table> cannot hold absolutely positioned rows).
import { useVirtualizer } from '@tanstack/react-virtual';
import { useMemo, useRef, useState, type ReactNode } from 'react';

export interface Column<T> {
  key: string;
  title: string;
  width: string; // a grid track: '1fr', '90px', 'minmax(120px, 2fr)'
  value: (row: T) => number | string; // what sorting compares
  render?: (row: T) => ReactNode; // defaults to the value
  numeric?: boolean; // right-aligned; sorts biggest first on the first click
}

export interface Sort {
  key: string;
  desc: boolean;
}

interface Props<T> {
  label: string;
  rows: T[];
  columns: Column<T>[];
  rowKey: (row: T) => string | number;
  initialSort?: Sort;
  onRowClick?: (row: T) => void;
  rowClass?: (row: T) => string;
  rowHeight?: number;
}

export function sortRows<T>(rows: T[], column: Column<T> | undefined, desc: boolean): T[] {
  if (!column) return rows;
  const sign = desc ? -1 : 1;
  return rows
    .map((row, index) => ({ row, index, value: column.value(row) }))
    .sort((x, y) => {
      const c = typeof x.value === 'number' && typeof y.value === 'number'
        ? x.value - y.value
        : String(x.value).localeCompare(String(y.value));
      return c * sign || x.index - y.index; // stable: ties keep the incoming order
    })
    .map((entry) => entry.row);
}

export default function VirtualTable<T>({ label, rows, columns, rowKey, initialSort, onRowClick, rowClass, rowHeight = 28 }: Props<T>) {
  const [sort, setSort] = useState<Sort | null>(initialSort ?? null);
  const sorted = useMemo(
    () => (sort ? sortRows(rows, columns.find((c) => c.key === sort.key), sort.desc) : rows),
    [rows, columns, sort],
  );
  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({
    count: sorted.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => rowHeight,
    overscan: 12,
  });
  const template = columns.map((c) => c.width).join(' ');

  function toggle(column: Column<T>) {
    setSort((now) => now?.key === column.key ? { key: column.key, desc: !now.desc } : { key: column.key, desc: !!column.numeric });
  }

  return (
    <div className="vtable" role="table" aria-label={label} aria-rowcount={sorted.length + 1}>
      <div className="vtable-head" role="row" style={{ gridTemplateColumns: template }}>
        {columns.map((column) => {
          const active = sort?.key === column.key;
          return (
            <div key={column.key} role="columnheader" className={column.numeric ? 'num' : undefined}
              aria-sort={active ? (sort.desc ? 'descending' : 'ascending') : 'none'}>
              <button type="button" onClick={() => toggle(column)}>
                {column.title}
                <span className="sort-mark" aria-hidden>{active ? (sort.desc ? ' ▼' : ' ▲') : ''}</span>
              </button>
            </div>
          );
        })}
      </div>
      <div className="vtable-body" ref={scroller}>
        <div style={{ height: virtual.getTotalSize(), position: 'relative' }}>
          {virtual.getVirtualItems().map((item) => {
            const row = sorted[item.index];
            return (
              <div key={rowKey(row)} role="row" aria-rowindex={item.index + 2}
                className={`vtable-row${onRowClick ? ' clickable' : ''} ${rowClass?.(row) ?? ''}`}
                style={{ gridTemplateColumns: template, height: item.size, transform: `translateY(${item.start}px)` }}
                onClick={onRowClick && (() => onRowClick(row))}>
                {columns.map((column) => (
                  <div key={column.key} role="cell" className={column.numeric ? 'num' : undefined}>
                    {column.render ? column.render(row) : column.value(row)}
                  </div>
                ))}
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}
