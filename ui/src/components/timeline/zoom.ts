/** The time range the timeline shows, in µs from the trace's start. */
export interface Zoom {
  start: number;
  end: number;
}

/** Where `us` falls in `zoom`, in percent of the track's width. */
export function percentOf(zoom: Zoom, us: number): number {
  const span = zoom.end - zoom.start;
  return span > 0 ? ((us - zoom.start) / span) * 100 : 0;
}
