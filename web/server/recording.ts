// The dashboard's view of a SQLite recording: the collector's read side (StoreQueries) on one read-only
// connection, live (beside the collector's writer: WAL lets both work) and replay alike. Everything the pages
// show that is not pushed over socket.io is read through it; no SQL lives in web/.
import { StoreQueries, isStoreError } from '../../collector/store/index.ts';

/** The file is not a recording this dashboard can read; the message ends with the fix. */
export class RecordingError extends Error {}

/** Opens a recording read-only; throws RecordingError when it is not a pinwatch recording this version reads. */
export function openRecording(file: string): StoreQueries {
  try {
    return StoreQueries.open(file);
  } catch (err) {
    if (isStoreError(err)) throw new RecordingError(`${err.message} (${err.fix})`);
    throw new RecordingError(`cannot read ${file}: ${(err as Error).message} (fix: pass a file written by pinwatch record or pinwatch serve --db; a damaged copy may open with sqlite3's .recover)`);
  }
}
