// Checks an MPTOKENS file that `mpitrain prepare --format jsonl` made
// against transformers' way: each example rendered by the real chat
// template (tokenizer_config.json's chat_template, or TEMPLATE_FILE) with
// @huggingface/jinja (add_generation_prompt false), tokenized by
// @huggingface/tokenizers without added special tokens. Asserts the ids are
// the same, every example starts where the file's mask says, and the
// tokens the mask counts decode to each assistant answer as the template
// placed it plus the special token that ends it (<|eot_id|>, <|im_end|>):
// exactly, or with the rest of a token the answer begins inside (a token
// that overlaps the answer counts, as transformers' assistant mask).
// usage: node chat_oracle.js TOKENIZER_DIR EXAMPLES.jsonl FILE.tok [TEMPLATE_FILE]
// (NODE_PATH = the oracle's node_modules; DATE_STRING=...: the template's
// date_string, as Llama 3.2's reads it). Exit 0 and "ok ..." or 1 and why.
"use strict";
const fs = require("fs");
const { Template } = require("@huggingface/jinja");
const { Tokenizer } = require("@huggingface/tokenizers");
const [dir, jsonl, tokfile, tplfile] = process.argv.slice(2);
if (!tokfile) {
  console.error("usage: node chat_oracle.js TOKENIZER_DIR EXAMPLES.jsonl FILE.tok [TEMPLATE_FILE]");
  process.exit(2);
}
const json = (name) => JSON.parse(fs.readFileSync(`${dir}/${name}`, "utf8"));
const config = json("tokenizer_config.json");
const tok = new Tokenizer(json("tokenizer.json"), config);
const text = (v) => (typeof v === "string" ? v : (v && v.content) || "");
const template = new Template(tplfile ? fs.readFileSync(tplfile, "utf8") : config.chat_template);
const fail = (why) => {
  console.log(`FAIL ${why}`);
  process.exit(1);
};

// what the oracle expects
const ids = [], starts = [], answers = [];
for (const line of fs.readFileSync(jsonl, "utf8").split("\n")) {
  if (!line.trim()) continue;
  const o = JSON.parse(line);
  const messages = o.messages || [{ role: "user", content: o.prompt }, { role: "assistant", content: o.completion }];
  const r = template.render({ messages, bos_token: text(config.bos_token), eos_token: text(config.eos_token),
                              add_generation_prompt: false,
                              ...(process.env.DATE_STRING ? { date_string: process.env.DATE_STRING } : {}) });
  starts.push(ids.length);
  ids.push(...tok.encode(r, { add_special_tokens: false }).ids);
  // each answer's turn: from its header to the special token that ends it;
  // the answer (as it is, trimmed, or without leading newlines) ends that
  let pos = 0;
  for (const m of messages.filter((m) => m.role === "assistant")) {
    const head = /assistant(<\|end_header_id\|>)?\n+/g;
    head.lastIndex = pos;
    const h = head.exec(r);
    const end = h ? /<\|[a-z_]+\|>/g : null;
    if (end) end.lastIndex = h.index + h[0].length;
    const e = end ? end.exec(r) : null;
    if (!e) fail(`cannot find the turn of the answer ${JSON.stringify(m.content)} in ${JSON.stringify(r)}`);
    const turn = r.slice(h.index + "assistant".length, e.index);
    const forms = [m.content, m.content.trim(), m.content.replace(/^\n+/, "")].filter((c) => turn.endsWith(c));
    answers.push({ forms: forms.map((c) => c + e[0]), turn: turn + e[0] });
    pos = e.index + e[0].length;
  }
}

// the file: MPTOKENS version 3, tokens then one mask byte each
const f = fs.readFileSync(tokfile);
if (f.toString("latin1", 0, 8) !== "MPTOKENS" || f.readUInt32LE(8) !== 3) fail(`${tokfile}: not an MPTOKENS version 3 file`);
const tb = f.readUInt32LE(12), n = Number(f.readBigUInt64LE(24) + f.readBigUInt64LE(32));
const got = [], mask = [];
for (let i = 0; i < n; i++) {
  const p = 64 + i * tb;
  got.push(tb === 4 ? f.readUInt32LE(p) : tb === 2 ? f.readUInt16LE(p) : f[p]);
  mask.push(f[64 + n * tb + i]);
}
for (let i = 0; i < Math.max(n, ids.length); i++)
  if (got[i] !== ids[i])
    fail(`token ${i}: the file has ${got[i]}, the template and tokenizer give ${ids[i]} ` +
         `(around: ${JSON.stringify(tok.decode(ids.slice(Math.max(0, i - 8), i + 4), { skip_special_tokens: false }))})`);
const fileStarts = mask.map((m, i) => (m & 2 ? i : -1)).filter((i) => i >= 0);
if (fileStarts.join() !== starts.join()) fail(`example starts: the file ${fileStarts}, expected ${starts}`);
// the counted runs, decoded
const runs = [];
for (let i = 0; i < n; i++) {
  if (!(mask[i] & 1)) continue;
  if (i === 0 || !(mask[i - 1] & 1) || mask[i] & 2) runs.push([]);
  runs[runs.length - 1].push(got[i]);
}
const said = runs.map((r) => tok.decode(r, { skip_special_tokens: false, clean_up_tokenization_spaces: false }));
const fits = (s, a) => a.forms.some((f) => s.endsWith(f)) && a.turn.endsWith(s);
if (said.length !== answers.length || said.some((s, i) => !fits(s, answers[i])))
  fail(`counted: ${JSON.stringify(said)}, expected each to end with one of ${JSON.stringify(answers.map((a) => a.forms))}`);
console.log(`ok ${n} tokens of ${starts.length} examples as the template renders them; ${answers.length} answers counted`);
