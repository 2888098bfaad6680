// The SQLite layout (collector/store writes it, web and tests read it). Bump SCHEMA_VERSION on change.
// Column names are part of the interface: tests and users query them directly.

// Version 2 (additive over 1): incidents, incident_anomalies, capture_gaps, pinned_memory,
// sessions.end_reason/end_detail/last_event_ns, anomalies.count/last_ts_ns, pins.origin. A writer upgrades a
// version-1 file in place (the new tables from DDL, the new columns from MIGRATIONS); a reader opens it as it is
// (the new tables and columns read as empty / defaults; incidents are derived from the anomalies).
//
// Version 3: a pin's pages are stored as runs (pin_page_runs, schema/pin-runs.ts) instead of one pin_pages row a
// page: a contiguous 64 GiB pin is a few rows, not 16M. A writer converts an older file's pin_pages into runs
// and drops pin_pages (collector/store/upgrade.ts); a reader of an older file builds the runs in a TEMP table
// of its own connection (collector/store/pin-runs.ts), the file stays as it is.
// Version 4 (additive; 3 is pin_page_runs): event_counts. Events of processes that hold no pin and no pin fd,
// and that touched no pin and raised nothing, are no longer stored as events rows but counted per second and
// kind (collector/kept-events.ts decides); rates and per-kind totals add the counts. A version-2/3 file is
// upgraded by creating the table (DDL); a reader of an older file finds no counts.
export const SCHEMA_VERSION = 4;
/** Oldest schema version this pinwatch still opens (and upgrades when writing). */
export const OLDEST_READABLE_SCHEMA_VERSION = 1;

/** The columns of pin_page_runs (also the TEMP table a reader of an older file builds: collector/store/page-runs.ts). */
export const PIN_PAGE_RUNS_COLUMNS = `  pin_id INTEGER NOT NULL REFERENCES pins(id),
  page INTEGER NOT NULL,              -- index of the run's first page in the pin
  count INTEGER NOT NULL,             -- pages in the run (>= 1)
  pinned_pfn INTEGER,                 -- pfn the device holds for the first page
  current_pfn INTEGER,                -- pfn pagemap last showed for the first page
  snapshot_late INTEGER NOT NULL DEFAULT 0,
  mapped_addr INTEGER,                -- where mremap moved the first page (NULL: not moved)
  PRIMARY KEY (pin_id, page)
`;

export const DDL = `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS sessions (
  id INTEGER PRIMARY KEY,
  host TEXT NOT NULL,
  kernel TEXT NOT NULL,
  bpftrace_version TEXT NOT NULL,
  mode TEXT NOT NULL,                 -- tracepoint | kprobe | replay
  started_ms INTEGER NOT NULL,        -- wall clock
  ended_ms INTEGER,
  probes_json TEXT NOT NULL,          -- ProbeStatus[]
  lost_events INTEGER NOT NULL DEFAULT 0,
  end_reason TEXT,                    -- clean | signal | bpftrace-gave-up | crashed (NULL: still recording)
  end_detail TEXT,                    -- the signal, why bpftrace gave up, or how the crash was found
  last_event_ns INTEGER,              -- CLOCK_MONOTONIC of the last event written (crash: where it stopped)
  lost_by_kind TEXT                   -- JSON {printed kind: events lost}: the main program's per-kind count minus lines received
);

CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY,            -- collector sequence, monotonic within the database
  session_id INTEGER NOT NULL REFERENCES sessions(id),
  ts_ns INTEGER NOT NULL,             -- CLOCK_MONOTONIC
  kind TEXT NOT NULL,
  pid INTEGER NOT NULL,
  tid INTEGER NOT NULL,
  comm TEXT NOT NULL,
  addr INTEGER,                       -- main user address of the event, when it has one
  len INTEGER,
  payload TEXT NOT NULL               -- JSON of the kind-specific fields
);
-- Page lookups by (pid, 1 GiB region of addr): an insert lands at the end of its (pid, region) group, so a
-- batch dirties a few index pages; (pid, addr) scattered every insert and cost 25-35% of ingest with SQLite at
-- 3M events (docs/benchmarks.md). Files written before keep their events_pid_addr index; queries use either.
CREATE INDEX IF NOT EXISTS events_pid_gib ON events(pid, addr >> 30);

-- Events not stored as rows (collector/kept-events.ts: processes without pins or pin fds, touching no pin,
-- raising nothing), counted per CLOCK_MONOTONIC second and kind. Rates and totals add them to the events rows.
CREATE TABLE IF NOT EXISTS event_counts (
  session_id INTEGER NOT NULL REFERENCES sessions(id),
  sec INTEGER NOT NULL,               -- floor(ts_ns / 1e9), CLOCK_MONOTONIC
  kind TEXT NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (session_id, sec, kind)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS pins (
  id INTEGER PRIMARY KEY,             -- the model's pin id
  session_id INTEGER NOT NULL REFERENCES sessions(id),
  pid INTEGER NOT NULL,
  comm TEXT NOT NULL,
  source TEXT NOT NULL,
  handle TEXT NOT NULL,
  addr INTEGER NOT NULL,
  len INTEGER NOT NULL,
  pages INTEGER NOT NULL,
  writable INTEGER NOT NULL,
  longterm INTEGER NOT NULL,
  backing TEXT NOT NULL,
  created_ns INTEGER NOT NULL,
  released_ns INTEGER,
  state TEXT NOT NULL,                -- intact | zapped | diverged | released
  origin TEXT NOT NULL DEFAULT 'event' -- event: seen being pinned | discovered: found pinned at start (pfns from pagemap then)
);

-- A pin's pages as runs: count pages from page index "page" (page i is at the pin's page-aligned start + i
-- pages) whose pinned pfn, current pfn and mapped address advance by one page each and whose flags are equal
-- (page page+k: pinned_pfn+k, current_pfn+k, mapped_addr+k*4096). NULL pfn: unknown (pinned) / not present
-- (current); NULL mapped_addr: at its pin-time address. The runs of a pin tile its pages in order.
CREATE TABLE IF NOT EXISTS pin_page_runs (
${PIN_PAGE_RUNS_COLUMNS}) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS pagemap_reads (
  id INTEGER PRIMARY KEY,
  session_id INTEGER NOT NULL REFERENCES sessions(id),
  ts_ns INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  addr INTEGER NOT NULL,
  present INTEGER NOT NULL,
  swapped INTEGER NOT NULL,
  pfn INTEGER,
  error TEXT,
  reason TEXT NOT NULL                -- what triggered the read: pin, madvise, timer, fault, …
);
CREATE INDEX IF NOT EXISTS pagemap_reads_pid_addr ON pagemap_reads(pid, addr);

CREATE TABLE IF NOT EXISTS anomalies (
  seq INTEGER PRIMARY KEY,
  session_id INTEGER NOT NULL REFERENCES sessions(id),
  rule TEXT NOT NULL,
  severity TEXT NOT NULL,
  pid INTEGER NOT NULL,
  comm TEXT NOT NULL,
  addr INTEGER NOT NULL,              -- page-aligned user VA of the affected page
  len INTEGER NOT NULL,
  pfn INTEGER,                        -- pinned pfn when known
  new_pfn INTEGER,
  confirmed INTEGER NOT NULL,         -- 1: pagemap shows it; 0: inferred from events
  low_confidence INTEGER NOT NULL DEFAULT 0,
  ts_ns INTEGER NOT NULL,
  wall_ms INTEGER NOT NULL,
  pin_id INTEGER,
  summary TEXT NOT NULL,
  evidence TEXT NOT NULL,             -- JSON Evidence[]
  count INTEGER NOT NULL DEFAULT 1,   -- times the same finding (rule, pin, process, address) was made
  last_ts_ns INTEGER                  -- CLOCK_MONOTONIC of the latest repeat
);
CREATE INDEX IF NOT EXISTS anomalies_rule ON anomalies(rule);

-- Incidents (schema/incidents.ts): anomalies one event caused on one pin (or process), under one title.
CREATE TABLE IF NOT EXISTS incidents (
  id INTEGER PRIMARY KEY,
  session_id INTEGER NOT NULL REFERENCES sessions(id),
  severity TEXT NOT NULL,             -- the highest of its anomalies
  title TEXT NOT NULL,
  cause TEXT,                         -- 'MAP_FIXED replaced'; NULL when a periodic pagemap check found it
  cause_seq INTEGER,                  -- events.seq of the triggering event
  pid INTEGER NOT NULL,
  comm TEXT NOT NULL,
  pin_id INTEGER,                     -- NULL: process-wide
  subject TEXT NOT NULL,              -- 'io_uring buffer 0 (ring fd 5)'
  pages INTEGER NOT NULL,
  confirmed INTEGER NOT NULL,
  ts_ns INTEGER NOT NULL,             -- CLOCK_MONOTONIC of the triggering event
  opened_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  closed_ms INTEGER                   -- its pin released / its process gone
);
CREATE TABLE IF NOT EXISTS incident_anomalies (
  anomaly_seq INTEGER PRIMARY KEY,    -- anomalies.seq: each anomaly belongs to one incident
  incident_id INTEGER NOT NULL REFERENCES incidents(id)
);
CREATE INDEX IF NOT EXISTS incident_anomalies_incident ON incident_anomalies(incident_id);

-- Windows in which a bpftrace process was not capturing (it died and was restarted, or gave up).
CREATE TABLE IF NOT EXISTS capture_gaps (
  id INTEGER PRIMARY KEY,
  session_id INTEGER NOT NULL REFERENCES sessions(id),
  process TEXT NOT NULL,              -- main (the tracepoint/kprobe set) | faults (the fault watcher)
  cause TEXT NOT NULL,                -- e.g. "bpftrace exited (SIGKILL)"
  started_ns INTEGER NOT NULL,        -- CLOCK_MONOTONIC
  ended_ns INTEGER,                   -- NULL: not capturing until the session ended
  started_ms INTEGER NOT NULL,        -- wall clock
  ended_ms INTEGER,
  events_lost INTEGER                 -- events known lost (bpftrace's count); NULL: unknown (nothing watched)
);

-- Pinned and locked memory per process as /proc/PID/status shows it (VmPin, VmLck), at start, after each
-- restart: what the enumerated pins do not explain is pinned by a source pinwatch cannot list.
CREATE TABLE IF NOT EXISTS pinned_memory (
  id INTEGER PRIMARY KEY,
  session_id INTEGER NOT NULL REFERENCES sessions(id),
  ts_ns INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  comm TEXT NOT NULL,
  vm_pin_pages INTEGER NOT NULL,
  vm_lck_pages INTEGER NOT NULL,
  explained_pages INTEGER NOT NULL    -- pages of the pins pinwatch enumerated for this process
);
`;

/** Columns added since version 1: a writer adds the missing ones to an older file (ALTER TABLE ADD COLUMN). */
export const MIGRATIONS: readonly { table: string; column: string; ddl: string }[] = [
  { table: 'sessions', column: 'end_reason', ddl: 'ALTER TABLE sessions ADD COLUMN end_reason TEXT' },
  { table: 'sessions', column: 'end_detail', ddl: 'ALTER TABLE sessions ADD COLUMN end_detail TEXT' },
  { table: 'sessions', column: 'last_event_ns', ddl: 'ALTER TABLE sessions ADD COLUMN last_event_ns INTEGER' },
  { table: 'pins', column: 'origin', ddl: "ALTER TABLE pins ADD COLUMN origin TEXT NOT NULL DEFAULT 'event'" },
  { table: 'anomalies', column: 'count', ddl: 'ALTER TABLE anomalies ADD COLUMN count INTEGER NOT NULL DEFAULT 1' },
  { table: 'anomalies', column: 'last_ts_ns', ddl: 'ALTER TABLE anomalies ADD COLUMN last_ts_ns INTEGER' },
  { table: 'sessions', column: 'lost_by_kind', ddl: 'ALTER TABLE sessions ADD COLUMN lost_by_kind TEXT' },
];
