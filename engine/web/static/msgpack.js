// @ts-check
/**
 * A small MessagePack codec (https://github.com/msgpack/msgpack/blob/master/spec.md) for the
 * engine's `msgpack` subprotocol: nil, booleans, integers (up to 64 bits), floats, strings,
 * binary, arrays and maps. Extension types are not used by the engine and are refused.
 *
 * Decoding: maps become plain objects (keys as strings), binary becomes Uint8Array, integers
 * beyond 2^53 become BigInt. Encoding: objects become maps (undefined values are left out, as
 * JSON.stringify does), integral numbers the smallest integer form, other numbers float64.
 *
 * @module msgpack
 */

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Encode a value into MessagePack bytes.
 * @param {unknown} value
 * @returns {Uint8Array}
 */
export function encode(value) {
  const writer = new Writer();
  writer.value(value, 0);
  return writer.bytes();
}

/** Decode one MessagePack value (the whole buffer must be that value).
 * @param {ArrayBuffer | ArrayBufferView} data
 * @returns {any}
 */
export function decode(data) {
  const bytes = data instanceof ArrayBuffer
    ? new Uint8Array(data)
    : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const reader = new Reader(bytes);
  const value = reader.value(0);
  if (reader.pos !== bytes.length) throw new Error('msgpack: trailing bytes after the value');
  return value;
}

const MAX_DEPTH = 100;

class Writer {
  constructor() {
    this.buf = new Uint8Array(256);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }

  /** @param {number} n */
  ensure(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf);
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  bytes() {
    return this.buf.slice(0, this.pos);
  }

  /** @param {number} b */
  u8(b) {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** @param {number} tag @param {number} v */
  tagU16(tag, v) {
    this.ensure(3);
    this.buf[this.pos] = tag;
    this.view.setUint16(this.pos + 1, v);
    this.pos += 3;
  }

  /** @param {number} tag @param {number} v */
  tagU32(tag, v) {
    this.ensure(5);
    this.buf[this.pos] = tag;
    this.view.setUint32(this.pos + 1, v);
    this.pos += 5;
  }

  /** @param {Uint8Array} bytes */
  raw(bytes) {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** @param {unknown} v @param {number} depth */
  value(v, depth) {
    if (depth > MAX_DEPTH) throw new Error('msgpack: nested too deeply');
    if (v === null || v === undefined) return this.u8(0xc0);
    if (v === false) return this.u8(0xc2);
    if (v === true) return this.u8(0xc3);
    if (typeof v === 'number') return this.number(v);
    if (typeof v === 'bigint') return this.bigint(v);
    if (typeof v === 'string') return this.string(v);
    if (v instanceof Uint8Array) return this.binary(v);
    if (v instanceof ArrayBuffer) return this.binary(new Uint8Array(v));
    if (Array.isArray(v)) {
      this.header(v.length, 0x90, 15, 0xdc, 0xdd);
      for (const item of v) this.value(item, depth + 1);
      return;
    }
    if (typeof v === 'object') {
      const entries = Object.entries(/** @type {object} */ (v)).filter(([, x]) => x !== undefined);
      this.header(entries.length, 0x80, 15, 0xde, 0xdf);
      for (const [key, item] of entries) {
        this.string(key);
        this.value(item, depth + 1);
      }
      return;
    }
    throw new TypeError(`msgpack: cannot encode a ${typeof v}`);
  }

  /** @param {number} n @param {number} fix @param {number} fixMax @param {number} t16 @param {number} t32 */
  header(n, fix, fixMax, t16, t32) {
    if (n <= fixMax) this.u8(fix | n);
    else if (n <= 0xffff) this.tagU16(t16, n);
    else this.tagU32(t32, n);
  }

  /** @param {number} n */
  number(n) {
    if (!Number.isSafeInteger(n)) {
      this.ensure(9);
      this.buf[this.pos] = 0xcb;
      this.view.setFloat64(this.pos + 1, n);
      this.pos += 9;
      return;
    }
    if (n >= 0) {
      if (n < 0x80) return this.u8(n);
      if (n <= 0xff) return this.raw(Uint8Array.of(0xcc, n));
      if (n <= 0xffff) return this.tagU16(0xcd, n);
      if (n <= 0xffffffff) return this.tagU32(0xce, n);
      return this.bigint(BigInt(n));
    }
    if (n >= -32) return this.u8(n & 0xff);
    if (n >= -0x80) return this.raw(Uint8Array.of(0xd0, n & 0xff));
    if (n >= -0x8000) {
      this.ensure(3);
      this.buf[this.pos] = 0xd1;
      this.view.setInt16(this.pos + 1, n);
      this.pos += 3;
      return;
    }
    if (n >= -0x80000000) {
      this.ensure(5);
      this.buf[this.pos] = 0xd2;
      this.view.setInt32(this.pos + 1, n);
      this.pos += 5;
      return;
    }
    return this.bigint(BigInt(n));
  }

  /** @param {bigint} n */
  bigint(n) {
    this.ensure(9);
    if (n >= 0n) {
      if (n > 0xffffffffffffffffn) throw new RangeError('msgpack: integer over 64 bits');
      this.buf[this.pos] = 0xcf;
      this.view.setBigUint64(this.pos + 1, n);
    } else {
      if (n < -0x8000000000000000n) throw new RangeError('msgpack: integer over 64 bits');
      this.buf[this.pos] = 0xd3;
      this.view.setBigInt64(this.pos + 1, n);
    }
    this.pos += 9;
  }

  /** @param {string} s */
  string(s) {
    const bytes = textEncoder.encode(s);
    const n = bytes.length;
    if (n < 32) this.u8(0xa0 | n);
    else if (n <= 0xff) this.raw(Uint8Array.of(0xd9, n));
    else if (n <= 0xffff) this.tagU16(0xda, n);
    else this.tagU32(0xdb, n);
    this.raw(bytes);
  }

  /** @param {Uint8Array} bytes */
  binary(bytes) {
    const n = bytes.length;
    if (n <= 0xff) this.raw(Uint8Array.of(0xc4, n));
    else if (n <= 0xffff) this.tagU16(0xc5, n);
    else this.tagU32(0xc6, n);
    this.raw(bytes);
  }
}

class Reader {
  /** @param {Uint8Array} bytes */
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  /** @param {number} n */
  need(n) {
    if (this.pos + n > this.bytes.length) throw new Error('msgpack: truncated data');
    const at = this.pos;
    this.pos += n;
    return at;
  }

  /** @param {number} depth @returns {any} */
  value(depth) {
    if (depth > MAX_DEPTH) throw new Error('msgpack: nested too deeply');
    const v = this.view;
    const tag = this.bytes[this.need(1)];
    if (tag < 0x80) return tag;
    if (tag >= 0xe0) return tag - 0x100;
    if (tag >= 0xa0 && tag <= 0xbf) return this.str(tag & 0x1f);
    if (tag >= 0x90 && tag <= 0x9f) return this.array(tag & 0x0f, depth);
    if (tag >= 0x80 && tag <= 0x8f) return this.map(tag & 0x0f, depth);
    switch (tag) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bin(v.getUint8(this.need(1)));
      case 0xc5: return this.bin(v.getUint16(this.need(2)));
      case 0xc6: return this.bin(v.getUint32(this.need(4)));
      case 0xca: return v.getFloat32(this.need(4));
      case 0xcb: return v.getFloat64(this.need(8));
      case 0xcc: return v.getUint8(this.need(1));
      case 0xcd: return v.getUint16(this.need(2));
      case 0xce: return v.getUint32(this.need(4));
      case 0xcf: return safe(v.getBigUint64(this.need(8)));
      case 0xd0: return v.getInt8(this.need(1));
      case 0xd1: return v.getInt16(this.need(2));
      case 0xd2: return v.getInt32(this.need(4));
      case 0xd3: return safe(v.getBigInt64(this.need(8)));
      case 0xd9: return this.str(v.getUint8(this.need(1)));
      case 0xda: return this.str(v.getUint16(this.need(2)));
      case 0xdb: return this.str(v.getUint32(this.need(4)));
      case 0xdc: return this.array(v.getUint16(this.need(2)), depth);
      case 0xdd: return this.array(v.getUint32(this.need(4)), depth);
      case 0xde: return this.map(v.getUint16(this.need(2)), depth);
      case 0xdf: return this.map(v.getUint32(this.need(4)), depth);
      default: throw new Error(`msgpack: unsupported type 0x${tag.toString(16)}`);
    }
  }

  /** @param {number} n */
  str(n) {
    const at = this.need(n);
    return textDecoder.decode(this.bytes.subarray(at, at + n));
  }

  /** @param {number} n */
  bin(n) {
    const at = this.need(n);
    return this.bytes.slice(at, at + n);
  }

  /** @param {number} n @param {number} depth */
  array(n, depth) {
    if (n > this.bytes.length - this.pos) throw new Error('msgpack: truncated data');
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }

  /** @param {number} n @param {number} depth */
  map(n, depth) {
    if (2 * n > this.bytes.length - this.pos) throw new Error('msgpack: truncated data');
    /** @type {Record<string, any>} */
    const out = {};
    for (let i = 0; i < n; i++) {
      const key = this.value(depth + 1);
      const name = typeof key === 'string' ? key : String(key);
      if (name === '__proto__') {
        Object.defineProperty(out, name, { value: this.value(depth + 1), enumerable: true,
          configurable: true, writable: true });
      } else {
        out[name] = this.value(depth + 1);
      }
    }
    return out;
  }
}

/** @param {bigint} n */
function safe(n) {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(n) : n;
}
