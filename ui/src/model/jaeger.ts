// The Jaeger query API's JSON (`/api/traces`, `/api/dependencies`...), as the server sends it.

export type TagType = 'string' | 'bool' | 'int64' | 'float64' | 'binary';

export interface KeyValue {
  key: string;
  type: TagType;
  value: string | number | boolean;
}

export interface Reference {
  refType: 'CHILD_OF' | 'FOLLOWS_FROM';
  traceID: string;
  spanID: string;
}

export interface Log {
  timestamp: number; // µs since the epoch
  fields: KeyValue[];
}

export interface Process {
  serviceName: string;
  tags: KeyValue[];
}

export interface Span {
  traceID: string;
  spanID: string;
  flags?: number;
  operationName: string;
  references: Reference[];
  startTime: number; // µs since the epoch
  duration: number; // µs
  tags: KeyValue[];
  logs: Log[];
  processID: string;
  warnings: string[] | null;
}

export interface Trace {
  traceID: string;
  spans: Span[];
  processes: Record<string, Process>;
  warnings: string[] | null;
}

export interface ApiError {
  code?: number;
  msg: string;
  traceID?: string;
}

export interface Envelope<T> {
  data: T | null;
  total: number;
  limit: number;
  offset: number;
  errors: ApiError[] | null;
}

export interface Operation {
  name: string;
  spanKind: string;
}

export interface DependencyLink {
  parent: string;
  child: string;
  callCount: number;
}
