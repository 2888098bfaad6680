// A minimal reader of the kernel's BTF (/sys/kernel/btf/vmlinux, and module BTF split on top of it):
// enough to answer "what are the parameter names of function F", "does struct S have member M" and
// "what is the value of enumerator E". Kprobe scripts use it to pick the variant matching the running
// kernel's signatures (collapse_file changed at 6.1, folio order fields moved) without kernel headers.
import { readFileSync } from 'node:fs';

const BTF_MAGIC = 0xeb9f;
const enum Kind {
  INT = 1, PTR = 2, ARRAY = 3, STRUCT = 4, UNION = 5, ENUM = 6, FWD = 7, TYPEDEF = 8, VOLATILE = 9, CONST = 10,
  RESTRICT = 11, FUNC = 12, FUNC_PROTO = 13, VAR = 14, DATASEC = 15, FLOAT = 16, DECL_TAG = 17, TYPE_TAG = 18, ENUM64 = 19,
}

export interface BtfParam {
  name: string;
  /** C-ish spelling of the type: 'struct folio *', 'unsigned long', 'pgoff_t'. */
  type: string;
}

interface RawType {
  kind: number;
  name: string;
  /** size or referenced type id, depending on kind */
  sizeOrType: number;
  /** kind-specific data offset within the type section buffer, and vlen */
  dataOff: number;
  vlen: number;
}

export class Btf {
  private types: RawType[] = [{ kind: 0, name: 'void', sizeOrType: 0, dataOff: 0, vlen: 0 }];
  private bufs: { buf: Buffer; typeStart: number; strStart: number; strLen: number; strBase: number }[] = [];
  private funcByName = new Map<string, number>();
  private structByName = new Map<string, number[]>();
  private enumValues = new Map<string, number>();

  /** Parse a BTF blob; `base` makes it a split BTF (kernel module) on top of vmlinux. */
  static parse(buf: Buffer, base?: Btf): Btf {
    const btf = base ? base.cloneForSplit() : new Btf();
    btf.addBlob(buf);
    return btf;
  }

  static fromFile(path = '/sys/kernel/btf/vmlinux', base?: Btf): Btf {
    return Btf.parse(readFileSync(path), base);
  }

  private cloneForSplit(): Btf {
    const b = new Btf();
    b.types = this.types.slice();
    b.bufs = this.bufs.slice();
    b.funcByName = new Map(this.funcByName);
    b.structByName = new Map(this.structByName);
    b.enumValues = new Map(this.enumValues);
    return b;
  }

  private addBlob(buf: Buffer): void {
    if (buf.length < 24 || buf.readUInt16LE(0) !== BTF_MAGIC) throw new Error('not a little-endian BTF blob');
    const hdrLen = buf.readUInt32LE(4);
    const typeOff = buf.readUInt32LE(8), typeLen = buf.readUInt32LE(12);
    const strOff = buf.readUInt32LE(16), strLen = buf.readUInt32LE(20);
    const typeStart = hdrLen + typeOff;
    const strStart = hdrLen + strOff;
    const strBase = this.bufs.reduce((n, b) => n + b.strLen, 0);
    const blob = { buf, typeStart, strStart, strLen, strBase };
    this.bufs.push(blob);
    const str = (off: number): string => this.str(off);
    let p = typeStart;
    const end = typeStart + typeLen;
    while (p < end) {
      const nameOff = buf.readUInt32LE(p);
      const info = buf.readUInt32LE(p + 4);
      const sizeOrType = buf.readUInt32LE(p + 8);
      const kind = (info >>> 24) & 0x1f;
      const vlen = info & 0xffff;
      const dataOff = p + 12;
      let dataLen = 0;
      switch (kind) {
        case Kind.INT: dataLen = 4; break;
        case Kind.ARRAY: dataLen = 12; break;
        case Kind.STRUCT: case Kind.UNION: dataLen = vlen * 12; break;
        case Kind.ENUM: dataLen = vlen * 8; break;
        case Kind.FUNC_PROTO: dataLen = vlen * 8; break;
        case Kind.VAR: dataLen = 4; break;
        case Kind.DATASEC: dataLen = vlen * 12; break;
        case Kind.DECL_TAG: dataLen = 4; break;
        case Kind.ENUM64: dataLen = vlen * 12; break;
        default: dataLen = 0;
      }
      const t: RawType = { kind, name: str(nameOff), sizeOrType, dataOff, vlen };
      const id = this.types.length;
      this.types.push(t);
      (t as RawType & { buf?: Buffer }).buf = buf;
      if (kind === Kind.FUNC && t.name && !this.funcByName.has(t.name)) this.funcByName.set(t.name, id);
      if ((kind === Kind.STRUCT || kind === Kind.UNION) && t.name) {
        const ids = this.structByName.get(t.name) ?? [];
        ids.push(id);
        this.structByName.set(t.name, ids);
      }
      if (kind === Kind.ENUM) {
        for (let i = 0; i < vlen; i++) {
          const o = dataOff + i * 8;
          this.enumValues.set(str(buf.readUInt32LE(o)), buf.readInt32LE(o + 4));
        }
      } else if (kind === Kind.ENUM64) {
        for (let i = 0; i < vlen; i++) {
          const o = dataOff + i * 12;
          this.enumValues.set(str(buf.readUInt32LE(o)), buf.readUInt32LE(o + 4) + buf.readUInt32LE(o + 8) * 2 ** 32);
        }
      }
      p = dataOff + dataLen;
    }
  }

  private str(off: number): string {
    for (const b of this.bufs) {
      if (off >= b.strBase && off < b.strBase + b.strLen) {
        const start = b.strStart + (off - b.strBase);
        const nul = b.buf.indexOf(0, start);
        return b.buf.toString('latin1', start, nul < 0 ? undefined : nul);
      }
    }
    return '';
  }

  private bufOf(t: RawType): Buffer {
    return (t as RawType & { buf: Buffer }).buf;
  }

  get typeCount(): number {
    return this.types.length - 1;
  }

  hasFunc(name: string): boolean {
    return this.funcByName.has(name);
  }

  /** Parameters of a function, or null when BTF does not describe it. */
  funcParams(name: string): BtfParam[] | null {
    const id = this.funcByName.get(name);
    if (id === undefined) return null;
    const proto = this.types[this.types[id].sizeOrType];
    if (!proto || proto.kind !== Kind.FUNC_PROTO) return null;
    const buf = this.bufOf(proto);
    const params: BtfParam[] = [];
    for (let i = 0; i < proto.vlen; i++) {
      const o = proto.dataOff + i * 8;
      params.push({ name: this.str(buf.readUInt32LE(o)), type: this.typeName(buf.readUInt32LE(o + 4)) });
    }
    return params;
  }

  /** Member names of a struct/union (the first complete definition with that name). */
  structMembers(name: string): string[] | null {
    const ids = this.structByName.get(name);
    if (!ids) return null;
    const t = this.types[ids[0]];
    const buf = this.bufOf(t);
    const names: string[] = [];
    this.collectMembers(t, buf, names);
    return names;
  }

  /** Members of anonymous nested unions/structs are the struct's own members in C. */
  private collectMembers(t: RawType, buf: Buffer, out: string[], depth = 0): void {
    for (let i = 0; i < t.vlen; i++) {
      const o = t.dataOff + i * 12;
      const mname = this.str(buf.readUInt32LE(o));
      if (mname) out.push(mname);
      else if (depth < 8) {
        const sub = this.types[this.skipModifiers(buf.readUInt32LE(o + 4))];
        if (sub && (sub.kind === Kind.STRUCT || sub.kind === Kind.UNION)) this.collectMembers(sub, this.bufOf(sub), out, depth + 1);
      }
    }
  }

  /** sizeof(struct name), or null. */
  structSize(name: string): number | null {
    const ids = this.structByName.get(name);
    return ids ? this.types[ids[0]].sizeOrType : null;
  }

  hasMember(struct: string, member: string): boolean {
    return this.structMembers(struct)?.includes(member) ?? false;
  }

  enumValue(name: string): number | undefined {
    return this.enumValues.get(name);
  }

  private skipModifiers(id: number): number {
    for (let n = 0; n < 16; n++) {
      const t = this.types[id];
      if (!t) return id;
      if (t.kind === Kind.VOLATILE || t.kind === Kind.CONST || t.kind === Kind.RESTRICT || t.kind === Kind.TYPE_TAG) id = t.sizeOrType;
      else return id;
    }
    return id;
  }

  typeName(id: number, depth = 0): string {
    const t = this.types[id];
    if (!t || depth > 16) return '?';
    switch (t.kind) {
      case 0: return 'void';
      case Kind.PTR: return `${this.typeName(t.sizeOrType, depth + 1)} *`;
      case Kind.CONST: return `const ${this.typeName(t.sizeOrType, depth + 1)}`;
      case Kind.VOLATILE: return `volatile ${this.typeName(t.sizeOrType, depth + 1)}`;
      case Kind.RESTRICT: case Kind.TYPE_TAG: return this.typeName(t.sizeOrType, depth + 1);
      case Kind.STRUCT: return `struct ${t.name || '(anon)'}`;
      case Kind.UNION: return `union ${t.name || '(anon)'}`;
      case Kind.ENUM: case Kind.ENUM64: return `enum ${t.name || '(anon)'}`;
      case Kind.FWD: return `struct ${t.name}`;
      case Kind.FUNC_PROTO: return 'fn';
      case Kind.ARRAY: return 'array';
      default: return t.name || '?';
    }
  }
}
