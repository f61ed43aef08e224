// Prints the ids of tiktoken's gpt2 encoding of a UTF-8 text file on one
// line, space-separated, as `mpitrain tokenize` does. <|endoftext|> in the
// text is ordinary text (no special tokens allowed or disallowed).
// usage: node tiktoken_ids.js FILE [js|wasm]   (NODE_PATH = the oracle's node_modules)
//        node tiktoken_ids.js --each js|wasm FILE OUT [FILE OUT ...]
//                                     several files on one load of the encoding
//                                     (seconds in JS), each's ids written to its OUT
"use strict";
const fs = require("fs");
const each = process.argv[2] === "--each";
const [file, impl = "js"] = each ? [process.argv[4], process.argv[3]] : process.argv.slice(2);
const jobs = each ? process.argv.slice(4) : [file, null];
if (!file || !["js", "wasm"].includes(impl) || jobs.length % 2 !== 0) {
  console.error("usage: node tiktoken_ids.js FILE [js|wasm]\n" +
                "       node tiktoken_ids.js --each js|wasm FILE OUT [FILE OUT ...]");
  process.exit(2);
}
let encode, free = () => {};
if (impl === "wasm") {
  const enc = require("tiktoken").get_encoding("gpt2");
  encode = (text) => Array.from(enc.encode_ordinary(text));
  free = () => enc.free();
} else {
  const enc = require("js-tiktoken").getEncoding("gpt2");
  encode = (text) => enc.encode(text, [], []);
}
for (let i = 0; i < jobs.length; i += 2) {
  const line = encode(fs.readFileSync(jobs[i], "utf8")).join(" ") + "\n";
  if (jobs[i + 1] === null) process.stdout.write(line);
  else fs.writeFileSync(jobs[i + 1], line);
}
free();
