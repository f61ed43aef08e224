# What the tokenizer tests share (sourced after tests/check.sh and
# scratch_dir, with HERE set).
#
# setup_oracles: installs the npm oracles (tests/oracle/setup.sh) and sets
# $oracle (their directory) and NODE_PATH; without node or npm the test
# FAILS and exits.
setup_oracles() {
  export ORACLE_DIR=${ORACLE_DIR:-$(dirname "$BIN")/oracle}
  command -v node > /dev/null || { echo "FAIL - node not found: the tokenizer oracles need nodejs and npm (apt-get install nodejs npm)"; exit 1; }
  oracle=$(bash "$HERE/../oracle/setup.sh" 2> last.err) ||
    { echo "FAIL - the npm oracles could not be installed: $(cat last.err)"; exit 1; }
  export NODE_PATH=$oracle/node_modules
}

# make_corpus: the mixed text the tokenizer tests compare ids on, written
# into the current directory: unicode.txt (hand-made Unicode: CJK,
# emoji with ZWJ, combining marks, RTL scripts, runs of blanks,
# contractions, digits, <|endoftext|> as text), runs.txt (long runs, the
# blanks regex flavours disagree on, contractions where the 512-byte match
# window ends), kjv.txt (bible-kjv), fortunes.txt (fortunes), and
# mixed.txt: all of them (4+ MB). Fails the test when bible gives no text.
make_corpus() {
cat > unicode.txt <<'EOF'
日本語のテキスト、中文文本。한국어 텍스트입니다. 漢字かなカナ混じり文
Emoji: 🙂😀🎉 👨‍👩‍👧‍👦 👩🏽‍💻 🏳️‍🌈 ❤️ 1️⃣ 🇫🇷🇩🇪 🧑‍🤝‍🧑
Combining: é ñ Å ǅ a̐éö̲ z̷̢̛̪a̶l̴g̸o̵ Ǹ̶ q̣̇
Arabic: مرحبا بالعالم ١٢٣٤٥ — Hebrew: שָׁלוֹם עולם, Persian: سلام ۱۲۳
Greek: Καλημέρα κόσμε; Cyrillic: Привет, мир! Devanagari: नमस्ते दुनिया १२३
Thai: สวัสดีชาวโลก Tamil: வணக்கம்
Contractions: it's IT'S don't DON'T we're WE'RE they've I'm you'll he'd She'S
Curly: it’s don’t ‘quoted’ “double” — 'S 'T 'Re 'LL ''s '''
Digits: 0 12 345 6789 1234567890123 3.14159 1,000,000 ٣.١٤ ¹²³ ½ Ⅻ ①②
Spaces:    four spaces	tab		two tabs
 leading space
trailing spaces   
tabs and newlines	
	
	

Mixed runs: a  b   c    d     e      f
<|endoftext|> literal <|endoftext|><|endoftext|> <|endoftext|>x
Symbols: !!! ??? ... --- ___ === +++ @#$%^&*() [] {} <> /\ | ~ ` ☃ ™ © ®
URL: https://example.com/path?q=1&r=two#frag email: a.b@example.org
Code: for (int i = 0; i < n; i++) { x += y[i] * 2; }	// tab-indented
Nonbreaking: a b c  d … ideographic　space
Math: ∀x ∈ ℝ: x² ≥ 0 ∑ ∫ √ ≠ ≤ ≈ ∞ 𝔸𝕓𝒸 𝟙𝟚𝟛
Box: ┌──┐ │  │ └──┘ ░▒▓█
Mixed script: abcдефghi日本jkl123abc αβγ123
EOF
{
  cat unicode.txt
  printf '%*s\n' 300 ''
  printf 'x%.0s' $(seq 1 500); echo
  printf '\n\n\n\n\n   \n\t\t\t\n \n'
  printf '9%.0s' $(seq 1 100); echo
  # long runs, and contractions where the tokenizer's 512-byte match window ends
  printf '%*sx\n' 3000 ''; printf 'y%.0s' $(seq 1 2500); printf '7%.0s' $(seq 1 1500); echo
  printf '%*s\n' 20000 ''; seq 1 3000 | sha256sum | head -c 64; seq 1 2000 | base64 -w0; echo
  # blanks the regex flavours disagree on (U+0085, U+180E, U+FEFF), U+200B, U+2028, U+3000
  printf 'a\xc2\x85b  \xc2\x85 c \xc2\x85\xc2\x85x \xe1\xa0\x8e y \xe1\xa0\x8e\xe1\xa0\x8e z\xef\xbb\xbf '
  printf '\xef\xbb\xbf\xef\xbb\xbf w \xe2\x80\x8b q\xe2\x80\xa8r \xe3\x80\x80\xe3\x80\x80s\n'
  for k in $(seq 500 516); do printf '%*s'"'"'ll\n' $k ''; printf "%${k}s're \n" '' | tr ' ' q; done
} > runs.txt
bible 'gen1:1-rev22:21' > kjv.txt 2> /dev/null || { echo "FAIL - bible (package bible-kjv) gave no text"; exit 1; }
for f in /usr/share/games/fortunes/*; do
  case $f in *.dat | *.u8) ;; *) [ -f "$f" ] && cat "$f" ;; esac
done > fortunes.txt
{ cat kjv.txt fortunes.txt; for i in 1 2 3; do cat runs.txt; done; } > mixed.txt
}
