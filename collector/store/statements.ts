// Prepared statements of one connection, prepared once per SQL text (the read queries build their SQL from a
// few fixed shapes, so the cache stays small).
import type Database from 'better-sqlite3';

export class Statements {
  private readonly cache = new Map<string, Database.Statement>();

  constructor(readonly db: Database.Database) {}

  get(sql: string): Database.Statement {
    let s = this.cache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.cache.set(sql, s);
    }
    return s;
  }

  clear(): void {
    this.cache.clear();
  }
}
