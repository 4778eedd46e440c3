import { useEffect, useRef } from 'react';

/** Page-wide key handling while `active`. Keys typed into form fields are left to them, and so
 * are Enter and Space on buttons and links (they press those). */
export function useKeys(active: boolean, onKey: (event: KeyboardEvent) => boolean): void {
  const handler = useRef(onKey);
  useEffect(() => {
    handler.current = onKey;
  });
  useEffect(() => {
    if (!active) return;
    const listener = (event: KeyboardEvent) => {
      if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
      const target = event.target as HTMLElement | null;
      if (target?.closest('input, textarea, select, [contenteditable="true"]')) return;
      if ((event.key === 'Enter' || event.key === ' ') && target?.closest('button, a, summary')) return;
      if (handler.current(event)) event.preventDefault(); // handled: no page scroll
    };
    window.addEventListener('keydown', listener);
    return () => window.removeEventListener('keydown', listener);
  }, [active]);
}
