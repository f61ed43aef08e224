// Times tiktoken's gpt2 encoding of a UTF-8 text file, the encoding alone
// (the file is read and the encoder built first), for
// bench/tokenizer_vs_tiktoken.sh. Prints one line per implementation:
//   <impl> bytes=<N> tokens=<M> seconds=<S> mb_per_s=<X>
// usage: node tiktoken_speed.js FILE ROUNDS   (NODE_PATH = the oracle's node_modules)
"use strict";
const fs = require("fs");
const [file, roundsArg = "3"] = process.argv.slice(2);
const rounds = Math.max(1, parseInt(roundsArg, 10) || 1);
const buf = fs.readFileSync(file);
const text = buf.toString("utf8");

function best(encode) {
  let secs = Infinity, tokens = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    tokens = encode(text).length;
    secs = Math.min(secs, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return { secs, tokens };
}

function report(name, { secs, tokens }) {
  console.log(`${name} bytes=${buf.length} tokens=${tokens} seconds=${secs.toFixed(3)} ` +
              `mb_per_s=${(buf.length / secs / 1e6).toFixed(2)}`);
}

const wasm = require("tiktoken").get_encoding("gpt2");
report("tiktoken-wasm", best((t) => wasm.encode_ordinary(t)));
wasm.free();
const js = require("js-tiktoken").getEncoding("gpt2");
report("js-tiktoken", best((t) => js.encode(t, [], [])));
