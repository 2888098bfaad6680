// The one status shape: the banner the collector sets (capture impossible, bpftrace died, database locked, …),
// sent over the collector link and socket.io, and shown by the web.

export interface CollectorStatus {
  level: 'ok' | 'warning' | 'error';
  message: string;
  /** What the user can do about it, one sentence. */
  fix?: string;
}
