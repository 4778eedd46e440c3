// Search within one trace: each span's searchable text (operation, service, span id, tags as
// `key=value`, log fields) lowercased once, then a query matches spans holding all its terms.
// So `redis`, `db.system`, `db.system=redis` and `HGET cart` all work.
import type { KeyValue } from '../../model/jaeger';
import type { SpanNode } from '../../model/trace';

export function searchText(node: SpanNode): string {
  const parts = [node.span.operationName, node.service, node.id];
  const addTags = (tags: KeyValue[]) => {
    for (const t of tags) parts.push(`${t.key}=${String(t.value)}`);
  };
  addTags(node.span.tags);
  for (const log of node.span.logs) addTags(log.fields);
  return parts.join('\n').toLowerCase();
}

export function queryTerms(query: string): string[] {
  return query.toLowerCase().split(/\s+/).filter(Boolean);
}

/** A matcher over `nodes` whose texts are built on first use (most views never search). */
export function spanSearcher(nodes: readonly SpanNode[]): (query: string) => Int32Array {
  let texts: string[] | null = null;
  return (query) => {
    const terms = queryTerms(query);
    if (!terms.length) return new Int32Array(0);
    texts ??= nodes.map(searchText);
    const out: number[] = [];
    for (let row = 0; row < texts.length; row++) {
      const text = texts[row];
      if (terms.every((term) => text.includes(term))) out.push(row);
    }
    return Int32Array.from(out);
  };
}
