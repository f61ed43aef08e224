// Hugging Face tokenizers' ids of a UTF-8 text file, through
// @huggingface/tokenizers (pure JS) and a directory's tokenizer.json +
// tokenizer_config.json, on one line, space-separated, as `mpitrain
// tokenize` prints them.
// usage: node hf_ids.js DIR FILE [special]     encode (special: add_special_tokens, as --special)
//        node hf_ids.js DIR IDS_FILE decode    the text of ids (special tokens kept)
//        node hf_ids.js DIR FILE bench         MB/s of encode alone, to stdout
//        node hf_ids.js DIR --each FILE MODE OUT [FILE MODE OUT ...]
//                                              several of the above (MODE plain, special
//                                              or decode) on one load of the tokenizer,
//                                              each written to its OUT: a large
//                                              tokenizer.json takes seconds to load in JS
// (NODE_PATH = the oracle's node_modules)
"use strict";
const fs = require("fs");
const { Tokenizer } = require("@huggingface/tokenizers");
const [dir, file, mode = ""] = process.argv.slice(2);
const usage = () => {
  console.error("usage: node hf_ids.js DIR FILE [special|decode|bench]\n" +
                "       node hf_ids.js DIR --each FILE MODE OUT [FILE MODE OUT ...]");
  process.exit(2);
};
if (!dir || !file) usage();
const jobs = file === "--each" ? process.argv.slice(4) : null;
if (jobs && (jobs.length === 0 || jobs.length % 3 !== 0 ||
             jobs.some((s, i) => i % 3 === 1 && !["plain", "special", "decode"].includes(s)))) usage();
const json = (name) => JSON.parse(fs.readFileSync(`${dir}/${name}`, "utf8"));
const config = fs.existsSync(`${dir}/tokenizer_config.json`) ? json("tokenizer_config.json") : {};
const tok = new Tokenizer(json("tokenizer.json"), config);
// what one job prints: the ids of a text, or the text of ids
const output = (file, mode) => {
  if (mode === "decode") {
    const ids = fs.readFileSync(file, "utf8").split(/\s+/).filter((s) => s).map(Number);
    // tokenizers' decode: no clean-up of spaces (a transformers option, lossy)
    return tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }
  const text = fs.readFileSync(file, "utf8");
  return tok.encode(text, { add_special_tokens: mode === "special" }).ids.join(" ") + "\n";
};
if (jobs) {
  for (let i = 0; i < jobs.length; i += 3) fs.writeFileSync(jobs[i + 2], output(jobs[i], jobs[i + 1]));
} else if (mode === "bench") {
  const text = fs.readFileSync(file, "utf8");
  const t0 = process.hrtime.bigint();
  const n = tok.encode(text, { add_special_tokens: false }).ids.length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const bytes = Buffer.byteLength(text, "utf8");
  process.stdout.write(`${bytes} bytes -> ${n} tokens in ${s.toFixed(3)} s: ${(bytes / s / 1e6).toFixed(2)} MB/s\n`);
} else {
  process.stdout.write(output(file, mode));
}
