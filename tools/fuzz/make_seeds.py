#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets (tests/fuzz/*.cpp) into <out>/<target>/.

The committed corpus (tests/fuzz/corpus/) started from these seeds and grew by fuzzing; it is kept small with
libFuzzer's -merge=1 (tools/fuzz/run.sh --merge). Rerun this script to regenerate or extend the seeds, e.g.
    tools/fuzz/make_seeds.py /tmp/seeds && tools/fuzz/run.sh --merge /tmp/seeds
Inputs are real-shaped: the tokenizer seeds keep the normalizer, pre-tokenizer (regexes included), post-
processor and decoder of the three real tokenizers in tests/fixtures/text/ with a vocabulary cut down to the
256 byte characters and the merges among them, so that each seed stays a few kilobytes.
"""
import hashlib
import json
import lzma
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write(out, target, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    folder = os.path.join(out, target)
    os.makedirs(folder, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# ---- json -------------------------------------------------------------------------------------------------


def json_seeds():
    yield '{"completion": "The answer is 24.", "answer": ["24"]}\n'
    yield '{"id": "#0#", "question": "Janet\\u2019s ducks", "answer": ["13"], "response_label": true}\r\n'
    yield '[1, -0, 0.5, -1.5e-300, 1e308, 18446744073709551615, -9223372036854775808, 123456789012345678901]'
    yield '{"a": {"b": [[], {}, [null, true, false]]}, "a": 2, "": ""}'
    yield '"esc \\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000 \\ud83d\\ude00 \\u00e9"'
    yield "\n\n  \t\n" + '{"x": 1}\n' + "\n" + '[2]\n' + "  \n" + '"three"\n'
    yield '{"records": [' + ",".join('{"i": %d, "s": "%s"}' % (i, "x" * i) for i in range(5)) + "]}\n{bad\n[1]"
    yield "[" * 40 + "]" * 40
    yield '{"text": "caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80"}'.encode("latin-1").decode("utf-8")
    yield b'{"bad utf8": "\xff\xfe"}\n{"ok": 1}\n'
    yield "1e99999"
    yield "\ufeff{}"


# ---- safetensors ------------------------------------------------------------------------------------------

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8,
         "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}


def safetensors(tensors, metadata=None, pad=True):
    """tensors: [(name, dtype, shape)]; bytes are counted up from 0."""
    header, offset, data = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape in tensors:
        n = SIZES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        data += bytes((offset + i) % 251 for i in range(n))
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def raw_safetensors(header_text, data=b""):
    text = header_text.encode()
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    yield safetensors([("w", "F32", [2, 2]), ("b", "BF16", [3])], {"format": "pt"})
    yield safetensors([(dt.lower(), dt, [2]) for dt in SIZES])
    yield safetensors([("scalar", "F64", []), ("empty", "F32", [0, 5]), ("vec", "U8", [7])], pad=False)
    yield safetensors([("model.layers.%d.weight" % i, "F16", [2, 3]) for i in range(4)], {"a": "b", "c": ""})
    yield raw_safetensors("{}")
    yield raw_safetensors('{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                          '"y":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}', b"\0" * 8)
    yield raw_safetensors('{"x":{"dtype":"F32","shape":[4611686018427387904,4,0],"data_offsets":[0,0]}}')
    yield raw_safetensors('{"x":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}}', b"\1")
    yield struct.pack("<Q", 1 << 40) + b"{}"


# ---- model_config -----------------------------------------------------------------------------------------


def model_config_seeds():
    with open(os.path.join(ROOT, "data/models/tiny/config.json")) as f:
        yield f.read()
    with open(os.path.join(ROOT, "tests/fixtures/model/llama3-tiny-random/config.json")) as f:
        yield f.read()
    llama31 = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "max_position_embeddings": 131072, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
        "hidden_act": "silu", "tie_word_embeddings": False, "torch_dtype": "bfloat16", "attention_bias": False,
        "mlp_bias": False, "initializer_range": 0.02}
    yield json.dumps(llama31, indent=2)
    qwen25 = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 152064, "hidden_size": 3584,
        "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
        "num_key_value_heads": 4, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "rope_scaling": None,
        "max_position_embeddings": 131072, "sliding_window": 131072, "use_sliding_window": False,
        "bos_token_id": 151643, "eos_token_id": 151643, "hidden_act": "silu", "tie_word_embeddings": False,
        "torch_dtype": "bfloat16"}
    yield json.dumps(qwen25)
    yield json.dumps({"model_type": "llama", "hidden_size": 96, "num_hidden_layers": 1, "num_attention_heads": 3,
                      "head_dim": 16, "intermediate_size": 8, "vocab_size": 5, "rope_scaling": {"type": "default"},
                      "eos_token_id": None, "bos_token_id": None})
    yield json.dumps({"model_type": "qwen2", "hidden_size": 9223372036854775807, "num_hidden_layers": 2,
                      "num_attention_heads": 1, "intermediate_size": 4, "vocab_size": 4})


# ---- tokenizer --------------------------------------------------------------------------------------------


def bytes_to_unicode():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def shrink(tok, n_merges=40, n_added=3):
    """The tokenizer with its vocabulary cut to the byte alphabet plus the first merges it can build."""
    vocab = {c: i for i, c in enumerate(sorted(bytes_to_unicode().values()))}
    merges = []
    for m in tok["model"]["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append(m)
            if len(merges) == n_merges:
                break
    tok["model"]["vocab"] = vocab
    tok["model"]["merges"] = merges
    added = tok.get("added_tokens") or []
    for i, a in enumerate(added[:n_added]):
        a["id"] = len(vocab) + i
    tok["added_tokens"] = added[:n_added]
    return json.dumps(tok, ensure_ascii=False, separators=(",", ":"))


def added(id, content, special=True, normalized=False, single_word=False, lstrip=False, rstrip=False):
    return {"id": id, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": normalized, "special": special}


def spm_like():
    """A Llama-2 style BPE: byte fallback, Prepend/Replace normalizer, Replace/ByteFallback/Fuse/Strip decoder."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for t in ["\u2581", "a", "b", "c", "\u2581a", "ab", "\u2581ab", "\u00e9", "1", "2"]:
        vocab[t] = len(vocab)
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
                  "vocab": vocab, "merges": ["\u2581 a", "a b", "\u2581a b"]}}
    return json.dumps(tok, ensure_ascii=False)


def splits_and_digits():
    """Split behaviours, Digits, NFKC + Strip normalizer, added-token rules, no decoder, array merges."""
    vocab = {t: i for i, t in enumerate(["[UNK]", "a", "b", "c", "1", "2", "3", " ", "-", "ab", "abc", "12"])}
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(12, "<mask>", single_word=True, lstrip=True, rstrip=True),
                         added(13, "abc", special=False, normalized=True)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKC"}, {"type": "Strip", "strip_left": True, "strip_right": False}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": "-"}, "behavior": "Removed", "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithNext", "invert": False},
            {"type": "Split", "pattern": {"Regex": "[abc]"}, "behavior": "Contiguous", "invert": True},
            {"type": "Digits", "individual_digits": False}]},
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 13], "cls": ["<s>", 12],
                           "trim_offsets": True, "add_prefix_space": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": "[UNK]", "fuse_unk": False,
                  "byte_fallback": False, "vocab": vocab, "merges": [["a", "b"], ["ab", "c"], ["1", "2"]]}}
    return json.dumps(tok)


def tokenizer_seeds():
    for name in ["llama3", "qwen3", "deepseek_v3"]:
        with lzma.open(os.path.join(ROOT, "tests/fixtures/text", name, "tokenizer.json.xz"), "rt") as f:
            yield shrink(json.load(f))
    with open(os.path.join(ROOT, "tests/fixtures/model/llama3-tiny-random/tokenizer.json")) as f:
        yield f.read()
    with open(os.path.join(ROOT, "data/models/tiny/tokenizer.json")) as f:
        yield json.dumps(json.load(f), ensure_ascii=False, separators=(",", ":"))
    yield spm_like()
    yield spm_like() + "\0\u2581a b\u00e9 <s> \xff"
    yield splits_and_digits()
    yield splits_and_digits() + "\0 abc <mask> 123-45 a\u00b2"


# ---- extract ----------------------------------------------------------------------------------------------


def extract_seeds():
    pairs = [
        ("She has 16 - 3 = <<16-3=13>>13 eggs.\nThe answer is 13.", ["13"]),
        ("It costs $1,200.50 in total. The answer is $1,200.50\n\nQuestion: next", ["1200.5", "1,200.50"]),
        ("Hence $\\boxed{\\frac{1}{2}}$.", ["0.5", "\\frac12"]),
        ("Final Answer: The final answer is $2^3$. I hope it is correct.", ["8", "2**3"]),
        ("Final Answer: The final answer is $\\text{East}$. I hope it is correct.", ["{east}", "\\text{(C)}"]),
        ("So \\boxed{(-\\infty, 2] \\cup [3, \\infty)}", ["(-\\infty,2]\\cup[3,\\infty)"]),
        ("\\boxed{\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}}", ["\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"]),
        ("The answer is x = 3 \\pm 2\\sqrt{2}.", ["3+2\\sqrt2, 3-2\\sqrt{2}", "x=3\\pm2\\sqrt{2}"]),
        ("The answer is 4343_6", ["4343_{6}", "1,450,007"]),
        ("The answer is 90^\\circ.", ["90", "90\u00b0"]),
        ("The answer is 25\\%.", ["0.25", "25"]),
        ("\\boxed{2x+4y=8}", ["x+2y=4", "y=-x/2+2"]),
        ("\\boxed{\\dfrac{\\sqrt{3}}{2}}", ["\\sin\\frac{\\pi}{3}", "sqrt(3)/2"]),
        ("\\boxed{\\{1, 2, 3\\}}", ["\\{3,2,1\\}", "1,2,3"]),
        ("The answer is 1\\frac{4}{5}", ["9/5", "1.8"]),
        ("Final Answer: $\\log_2 8 + 3!$", ["9", "factorial(3)+3"]),
        ("the answer is 10^{100000}", ["10**100000", "5**5**5"]),
        ("\\boxed{|x-1|+\\binom{5}{2}}", ["abs(x-1)+10", "x & 3 ^ 2"]),
        ("the answer is .5 infinity and 3.000", ["0.5", "inf"]),
        ("no number here", []),
    ]
    for completion, golds in pairs:
        yield "\0".join([completion] + golds)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests/fuzz/corpus")
    for target, seeds in [("json", json_seeds), ("safetensors", safetensors_seeds),
                          ("model_config", model_config_seeds), ("tokenizer", tokenizer_seeds),
                          ("extract", extract_seeds)]:
        for s in seeds():
            write(out, target, s)
    print("seeds written to", out)


if __name__ == "__main__":
    main()
