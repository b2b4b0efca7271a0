// Reads a JSON list of hex-encoded MessagePack values on stdin; for each, decodes it with
// msgpack.js and encodes the result again; prints the JSON list of hex strings
// (tests/browser/test_client_js.py compares with Python's msgpack).
import { decode, encode } from '../../engine/web/static/msgpack.js';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const inputs = JSON.parse(Buffer.concat(chunks).toString());
const out = inputs.map((hex) => Buffer.from(encode(decode(Buffer.from(hex, 'hex')))).toString('hex'));
process.stdout.write(JSON.stringify(out));
