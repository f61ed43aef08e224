// Hugging Face tokenizers' ids of a UTF-8 text file, through
// @huggingface/tokenizers (pure JS) and a directory's tokenizer.json +
// tokenizer_config.json, on one line, space-separated, as `mpitrain
// tokenize` prints them.
// usage: node hf_ids.js DIR FILE [special]     encode (special: add_special_tokens, as --special)
//        node hf_ids.js DIR IDS_FILE decode    the text of ids (special tokens kept)
//        node hf_ids.js DIR FILE bench         MB/s of encode alone, to stdout
// (NODE_PATH = the oracle's node_modules)
"use strict";
const fs = require("fs");
const { Tokenizer } = require("@huggingface/tokenizers");
const [dir, file, mode = ""] = process.argv.slice(2);
if (!dir || !file) {
  console.error("usage: node hf_ids.js DIR FILE [special|decode|bench]");
  process.exit(2);
}
const json = (name) => JSON.parse(fs.readFileSync(`${dir}/${name}`, "utf8"));
const config = fs.existsSync(`${dir}/tokenizer_config.json`) ? json("tokenizer_config.json") : {};
const tok = new Tokenizer(json("tokenizer.json"), config);
if (mode === "decode") {
  const ids = fs.readFileSync(file, "utf8").split(/\s+/).filter((s) => s).map(Number);
  // tokenizers' decode: no clean-up of spaces (a transformers option, lossy)
  process.stdout.write(tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }));
} else if (mode === "bench") {
  const text = fs.readFileSync(file, "utf8");
  const t0 = process.hrtime.bigint();
  const n = tok.encode(text, { add_special_tokens: false }).ids.length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const bytes = Buffer.byteLength(text, "utf8");
  process.stdout.write(`${bytes} bytes -> ${n} tokens in ${s.toFixed(3)} s: ${(bytes / s / 1e6).toFixed(2)} MB/s\n`);
} else {
  const text = fs.readFileSync(file, "utf8");
  const ids = tok.encode(text, { add_special_tokens: mode === "special" }).ids;
  process.stdout.write(ids.join(" ") + "\n");
}
