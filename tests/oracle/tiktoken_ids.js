// Prints the ids of tiktoken's gpt2 encoding of a UTF-8 text file on one
// line, space-separated, as `mpitrain tokenize` does. <|endoftext|> in the
// text is ordinary text (no special tokens allowed or disallowed).
// usage: node tiktoken_ids.js FILE [js|wasm]   (NODE_PATH = the oracle's node_modules)
"use strict";
const fs = require("fs");
const [file, impl = "js"] = process.argv.slice(2);
if (!file) {
  console.error("usage: node tiktoken_ids.js FILE [js|wasm]");
  process.exit(2);
}
const text = fs.readFileSync(file, "utf8");
let ids;
if (impl === "wasm") {
  const enc = require("tiktoken").get_encoding("gpt2");
  ids = Array.from(enc.encode_ordinary(text));
  enc.free();
} else {
  ids = require("js-tiktoken").getEncoding("gpt2").encode(text, [], []);
}
process.stdout.write(ids.join(" ") + "\n");
