#!/usr/bin/env python3
"""Generates the golden files tests/unit/test_embed.c compares the C embedder with.

  golden_tokens.jsonl   {"text": ..., "ids": [...]} per line: >= 500 strings tokenized by Hugging Face `tokenizers`
                        with the model's own tokenizer.json (no padding, truncation to 256 tokens: what
                        sentence-transformers does with all-MiniLM-L6-v2).
  golden_embed.jsonl    {"text": ..., "ntokens": n} per line, and
  golden_embed.f32      the reference embeddings of those texts, one row of 384 little-endian float32 per line of
                        the .jsonl, in order: a float64 NumPy forward pass of BERT written here from model.safetensors
                        (independent of the C code: no packing, no approximations; erf from SciPy), mean pooling,
                        L2 normalisation.

The embedding texts are ~50 hand-picked strings plus 200 passages of English Wikipedia (2015 dump in
../shared/datasets/wikipedia; text CC BY-SA 3.0 / GFDL, Wikipedia contributors: see README.md here).

Usage (from the repository root; needs tokenizers, numpy and scipy, e.g. in a venv):
  python3 -m venv build-embed/venv && build-embed/venv/bin/pip install tokenizers numpy scipy
  tools/fetch_model.sh
  build-embed/venv/bin/python tests/embed/make_golden.py [MODEL_DIR]      (default $QV_MODEL_DIR or build/model)

Everything is deterministic (fixed seeds), so a rerun with the same libraries reproduces the files.
"""
import json
import os
import random
import re
import sys
import tarfile

import numpy as np
from scipy.special import erf
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MAX_LEN = 256


# ---------------------------------------------------------------------------------------------------------------------
# Token test strings
# ---------------------------------------------------------------------------------------------------------------------

ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world!",
    "This is an example sentence.",
    "Each sentence is converted into a 384-dimensional vector.",
    "Vector databases store embeddings and answer nearest-neighbour queries.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "I can't believe it's not butter!",
    "She said, \"Don't go there\"; he went anyway.",
    "e-mail: someone@example.com, web: https://example.org/path?q=1&r=2#frag",
    "Prices rose 3.5% in Q3 2023 ($1,234.56 vs. $1,190.00).",
    "RAG pipelines retrieve passages, then a language model answers from them.",
    "HNSW builds a multi-layer proximity graph; search descends greedily.",
    "unaffable unbelievable antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "COVID-19 vaccines were developed in under a year.",
    "The mitochondria is the powerhouse of the cell.",
    "To be, or not to be, that is the question.",
    "Mr. O'Neil's dog-eat-dog world isn't for everyone.",
    "GPU kernels (CUDA, cuBLAS) accelerate matrix multiplication.",
    "int main(void) { return printf(\"%d\\n\", 42) > 0; }",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "x = [1, 2, 3]; y = {'a': 1, \"b\": 2}",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
    "ALL CAPS SHOUTING IS STILL LOWERCASED BY THE TOKENIZER",
    "MiXeD cAsE wOrDs AnD CamelCaseIdentifiersLikeThis",
    "snake_case_identifier and kebab-case-identifier and dotted.name.space",
    "Numbers: 0 1 12 123 1234 12345 123456 3.14159 2.71828 1e-9 0x1F 0b1010",
    "Dates: 2024-01-15, 15/01/2024, Jan 15th, 2024, 10:30am",
    "Temperatures of -40 degrees are the same in Celsius and Fahrenheit.",
    "The U.S.A. and the U.K. signed the treaty in Washington, D.C.",
    "He scored 10/10 -- an A+ -- on the exam!!!",
    "Wait... what?! Really?!?",
    "#hashtag @mention $TICKER %percent ^caret &amp *star",
    "path/to/some/file.txt and C:\\Windows\\System32",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "tokenization tokenizer tokenized retokenize detokenization",
    "playing played player plays replay replayed",
    "The embeddings are normalised so that cosine similarity is a dot product.",
    "Large language models hallucinate when retrieval fails.",
    "A man, a plan, a canal: Panama.",
]

ACCENTS = [
    "Café crème brûlée à la française.",
    "Ça va très bien, merci ! Où est la bibliothèque ?",
    "Größenwahn und Übermut: Straße, Fußgänger, Äpfel, Öl.",
    "¿Dónde está el baño? ¡Mañana será otro día!",
    "São Paulo, Brasília, Florianópolis e Maceió.",
    "Dziękuję bardzo! Źdźbło, gęś, łódź, żółw.",
    "Tiếng Việt có nhiều dấu: ă â đ ê ô ơ ư ạ ả ấ ầ ẩ ẫ ậ.",
    "Ångström, Øresund, Ærø, smørrebrød.",
    "naïve coöperate résumé façade jalapeño piñata",
    "Čeština: příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Română: știință, țară, învățământ.",
    "Türkçe: İstanbul, ığdır, şeker, çiçek, öğretmen, ünlü.",
    "Ελληνικά: Καλημέρα κόσμε, ΣΑΣ σας, άλφα ΐ ΰ.",
    "Русский: Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Українська: Гей, ґанок, їжак, є.",
    "e\u0301 (decomposed é) vs \u00e9 (precomposed é)",
    "A\u030a vs \u00c5 vs \u212b (Angstrom sign)",
    "ﬁ ﬂ ﬀ ligatures and ½ ¼ ² ³ superscripts",
    "Ǆ ǅ ǆ Ǉ ǈ ǉ digraphs",
    "\u1e9e capital sharp s, \u00df small sharp s",
]

CJK = [
    "我爱北京天安门。",
    "机器学习是人工智能的一个分支。",
    "今天天气很好，我们去公园吧！",
    "東京は日本の首都です。",
    "ひらがなとカタカナとかんじ",
    "カタカナ・ワード・テスト",
    "日本語の文章を単語に分割する。",
    "한국어 문장입니다. 안녕하세요!",
    "대한민국의 수도는 서울이다",
    "繁體中文與簡體中文",
    "混合English和中文text在一起",
    "CJK Extension A: 㐀㐁㐂 and compatibility: 豈更車",
    "Ideographic space\u3000and full stop。and comma、",
    "全角文字：ＡＢＣ１２３！？",
    "半角ｶﾀｶﾅ ﾃｽﾄ",
    "𠀀𠀁𠀂 (Extension B)",
    "中文标点：“引号”‘单引号’《书名号》【括号】……——",
    "二〇二四年一月十五日",
]

EMOJI = [
    "I love pizza 🍕!",
    "😀😃😄😁😆😅😂🤣",
    "Thumbs up 👍🏽 and 👍🏿",
    "Family: 👨‍👩‍👧‍👦 (ZWJ sequence)",
    "Flags: 🇫🇷 🇯🇵 🇺🇸",
    "Keycap: 1️⃣ #️⃣",
    "Heart: ❤️ vs ❤ vs ♥",
    "🔥🔥🔥 fire 🔥🔥🔥",
    "emoji-in-word🙂word",
    "🤖 robots and 🧠 brains",
    "Weather ☀️🌧️⛄ today",
    "✅ done ❌ failed ⚠️ warning",
    "🏳️‍🌈 rainbow flag",
    "🎉🎊🎈 party",
    "face with tears of joy😂and skull💀",
]

PUNCT = [
    "!!!",
    "?!?!?!",
    "...",
    "…",
    "---",
    "— – ‐ ‑ ‒ −",
    "((()))[[[]]]{{{}}}",
    "<<<>>>",
    "\"\"''``",
    "«quoted» „german“ ‹single›",
    "***___~~~",
    "a.b.c.d",
    "a,b;c:d",
    "$$$ €€€ £££ ¥¥¥",
    "+-*/=%^&|\\",
    "§¶†‡•·",
    "¿¡",
    "@#@#@#",
    "..!!??,,;;::",
    "https://a.b/c?d=e&f=g#h",
    "[CLS]",
    "[SEP] x [MASK] y [UNK] z [PAD]",
    "[mask] [cls] [Sep]",
    "[[SEP]]",
    "text[SEP]text",
    "[MASK][MASK][MASK]",
    "[CLS",
    "SEP]",
]

CONTROL = [
    "tab\tseparated\tvalues",
    "line one\nline two\r\nline three\rfour",
    "null\x00byte",
    "bell\x07 and escape\x1b[31m red\x1b[0m",
    "vertical\x0btab and form\x0cfeed",
    "delete\x7fchar",
    "c1 controls \x80\x85\x9f here",
    "zero\u200bwidth\u200cnon\u200djoiner",
    "\ufeffBOM at start",
    "soft\u00adhyphen",
    "bidi \u200e\u200f\u202a\u202e marks",
    "word\u2060joiner",
    "line\u2028separator\u2029paragraph",
    "nbsp\u00a0here and\u2009thin\u202fnarrow",
    "replacement \ufffd char",
    "private use \ue000\uf8ff",
    "variation selector \ufe0f and \ufe0e",
    "combining only: \u0300\u0301\u0302",
    "\x01\x02\x03\x04\x05",
    "a\x00b\x00c",
]

EMPTYISH = [
    "",
    " ",
    "   ",
    "\t\n\r",
    "\u200b",
    "\x00",
    "\u0301",
    "\ufeff",
    "\u3000",
    "\x00\x01\u200b\ufeff \t",
    "a",
    ".",
    "🙂",
    "中",
]

# Long inputs: past 256 tokens, a word of exactly 100 and 101 characters (WordPiece's limit), a long run with no
# spaces, long CJK and emoji runs.
LONG = [
    " ".join(["word"] * 400),
    ("The history of the city spans many centuries, marked by wars, plagues, fires and rebuilding. " * 30).strip(),
    "a" * 100,
    "a" * 101,
    "é" * 100,
    "é" * 101,
    "x" * 1000,
    "supercalifragilistic" * 20,
    "ab" * 49 + "!" + "cd" * 60,
    "中文" * 300,
    "🙂" * 300,
    "-" * 600,
    ("word " * 253).strip() + " tail1 tail2 tail3",
    ("word " * 254).strip() + " tail",
    ("word " * 255).strip(),
    ("un" + "believable" * 3 + " ") * 60,
]

# Random strings from code points of long-established blocks (assigned by Unicode 6 at the latest: the reference
# tokenizer classifies with older Unicode tables than utf8proc, which only matters for characters assigned since).
POOLS = [
    (0x20, 0x7E), (0xA0, 0x17F), (0x180, 0x24F), (0x300, 0x36F), (0x391, 0x3C9), (0x400, 0x45F), (0x5D0, 0x5EA),
    (0x621, 0x64A), (0x64B, 0x652), (0x660, 0x669), (0x905, 0x939), (0x93E, 0x94D), (0xE01, 0xE3A), (0xE40, 0xE4E),
    (0x10A0, 0x10C5), (0x1E00, 0x1EFF), (0x2010, 0x2027), (0x2030, 0x205E), (0x20A0, 0x20B5), (0x2190, 0x21FF),
    (0x2200, 0x22FF), (0x2500, 0x257F), (0x3001, 0x3003), (0x3041, 0x3096), (0x30A1, 0x30FA), (0x4E00, 0x9FA5),
    (0xAC00, 0xD7A3), (0xFF01, 0xFF5E), (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x09, 0x0D), (0x00, 0x1F),
    (0x80, 0x9F), (0x200B, 0x200F),
]


def random_strings(rng, n):
    out = []
    for _ in range(n):
        chars = []
        for _ in range(rng.randint(1, 40)):
            if rng.random() < 0.25:
                chars.append(" ")
                continue
            lo, hi = POOLS[rng.randrange(len(POOLS))]
            chars.append(chr(rng.randint(lo, hi)))
        out.append("".join(chars))
    return out


def vocab_word_strings(rng, vocab, n):
    """Sentences of real vocabulary entries, glued and cased at random, to exercise WordPiece's longest match."""
    words = [w for w in vocab if w.isalpha() and not w.startswith("[")]
    pieces = [w[2:] for w in vocab if w.startswith("##") and w[2:].isalpha()]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            w = rng.choice(words)
            while rng.random() < 0.4:
                w += rng.choice(pieces)
            r = rng.random()
            w = w.upper() if r < 0.1 else w.capitalize() if r < 0.3 else w
            parts.append(w)
        out.append(rng.choice([" ", "  ", "-", " ", ", "]).join(parts))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Reference forward pass
# ---------------------------------------------------------------------------------------------------------------------

def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":  # embeddings.position_ids (I64) is not a weight
            continue
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(t["shape"]).astype(np.float64)
    return out


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def reference_embed(W, cfg, ids):
    """BERT forward of one unpadded sequence in float64, then mean pooling and L2 normalisation."""
    H, nh, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    d = H // nh
    L = len(ids)
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:L] + \
        W["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    for l in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % l

        def lin(v, name):
            return v @ W[p + name + ".weight"].T + W[p + name + ".bias"]
        q = lin(x, "attention.self.query").reshape(L, nh, d).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(L, nh, d).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(L, nh, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(L, H)
        x = layer_norm(x + lin(ctx, "attention.output.dense"), W[p + "attention.output.LayerNorm.weight"],
                       W[p + "attention.output.LayerNorm.bias"], eps)
        u = lin(x, "intermediate.dense")
        u = 0.5 * u * (1.0 + erf(u / np.sqrt(2.0)))
        x = layer_norm(x + lin(u, "output.dense"), W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"],
                       eps)
    e = x.mean(0)
    return e / max(np.linalg.norm(e), 1e-12)


EMBED_TEXTS = [
    "",
    "a",
    "Hello, world!",
    "This is an example sentence.",
    "Each sentence is converted",
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "How do vector databases index embeddings?",
    "HNSW builds a multi-layer proximity graph for approximate nearest neighbour search.",
    "Python is a programming language that lets you work quickly.",
    "The mitochondria is the powerhouse of the cell.",
    "I love pizza 🍕!",
    "😀😃😄😁😆😅😂🤣",
    "我爱北京天安门。",
    "東京は日本の首都です。",
    "한국어 문장입니다.",
    "Café crème brûlée à la française.",
    "Größenwahn und Übermut: Straße, Fußgänger.",
    "Русский текст для проверки.",
    "Ελληνικά: Καλημέρα κόσμε.",
    "!!!???...",
    "[CLS] [SEP] [MASK]",
    "\x00\x01\u200b",
    "tab\tseparated\nlines",
    "unaffable antidisestablishmentarianism",
    "COVID-19 vaccines were developed in under a year.",
    "SELECT id FROM users WHERE age >= 18;",
    "https://example.org/path?q=1&r=2#frag",
    "Prices rose 3.5% in Q3 2023.",
    "The cat sat on the mat.",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    " ".join(["word"] * 400),
    ("The history of the city spans many centuries, marked by wars, plagues, fires and rebuilding. " * 30).strip(),
    "x" * 1000,
    "中文" * 300,
    "🙂" * 300,
    "Machine learning is a field of study in artificial intelligence concerned with the development of statistical "
    "algorithms that can learn from data and generalize to unseen data.",
    "Quiver embeds text in process, on the GPU where one exists and on the CPU otherwise.",
    "Retrieval-augmented generation combines a retriever with a generator.",
    "The embeddings are normalised so that cosine similarity is a dot product.",
    "ALL CAPS SHOUTING IS STILL LOWERCASED",
]


def wikipedia_passages(n):
    """The first n paragraphs of 40..400 words from the first member of the Wikipedia archive (deterministic)."""
    path = os.path.join(ROOT, "..", "shared", "datasets", "wikipedia", "enwiki-2015-AA.tar.xz")
    if not os.path.exists(path):
        path = "/work/shared/datasets/wikipedia/enwiki-2015-AA.tar.xz"
    out = []
    with tarfile.open(path) as tar:
        for m in tar:
            if not m.isfile():
                continue
            text = tar.extractfile(m).read().decode("utf-8")
            for para in text.split("\n"):
                para = para.strip()
                if para.startswith("<") or not (40 <= len(para.split()) <= 400):
                    continue
                out.append(para)
                if len(out) == n:
                    return out
    return out


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("QV_MODEL_DIR", os.path.join(ROOT, "build", "model"))
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_LEN)
    vocab = [line.rstrip("\n") for line in open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8")]

    rng = random.Random(20240501)
    texts = ENGLISH + ACCENTS + CJK + EMOJI + PUNCT + CONTROL + EMPTYISH + LONG
    texts += vocab_word_strings(rng, vocab, 180)
    texts += random_strings(rng, 200)
    seen, uniq = set(), []
    for t in texts:
        if t not in seen:
            seen.add(t)
            uniq.append(t)
    with open(os.path.join(HERE, "golden_tokens.jsonl"), "w", encoding="ascii") as f:
        for t in uniq:
            f.write(json.dumps({"text": t, "ids": tok.encode(t).ids}, ensure_ascii=True) + "\n")
    print("golden_tokens.jsonl: %d strings" % len(uniq))

    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    W = load_safetensors(os.path.join(model_dir, "model.safetensors"))
    etexts = EMBED_TEXTS + wikipedia_passages(200)
    vecs = np.zeros((len(etexts), cfg["hidden_size"]), dtype="<f4")
    with open(os.path.join(HERE, "golden_embed.jsonl"), "w", encoding="ascii") as f:
        for i, t in enumerate(etexts):
            ids = tok.encode(t).ids
            vecs[i] = reference_embed(W, cfg, ids)
            f.write(json.dumps({"text": t, "ntokens": len(ids)}, ensure_ascii=True) + "\n")
    vecs.tofile(os.path.join(HERE, "golden_embed.f32"))
    print("golden_embed: %d texts (%d from Wikipedia)" % (len(etexts), len(etexts) - len(EMBED_TEXTS)))


if __name__ == "__main__":
    main()
