#!/usr/bin/env python3
"""Hugging Face transformers' generate() on the random model shape of `ctm bench sampling --device cuda`: the
side-by-side row. Same shape (Llama-3-8B by default), bfloat16, random prompts of --prompt_tokens, every sample
--new_tokens long (EOS ignored), temperature 1, top_p 0.95, no top-k (ctm has none). Prints one JSON line per
batch: {"batch", "prompt", "new", "seconds", "tok_s"} (tokens/s of the whole generate() call, prefill included,
as ctm's "tok/s" column). Needs torch and transformers (the GPU machine's image has them)."""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    "8b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=14336, vocab_size=128256, tie_word_embeddings=False),
    "110m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=12,
                 intermediate_size=2048, vocab_size=32000, tie_word_embeddings=True),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", default="8b", choices=sorted(SHAPES))
    ap.add_argument("--batches", default="1,8,64,256")
    ap.add_argument("--prompt_tokens", type=int, default=64)
    ap.add_argument("--new_tokens", type=int, default=64)
    ap.add_argument("--attn", default="sdpa", help="attn_implementation: sdpa (the default of transformers) or eager")
    args = ap.parse_args()

    config = LlamaConfig(max_position_embeddings=8192, rope_theta=500000.0, attn_implementation=args.attn,
                         **SHAPES[args.shape])
    torch.manual_seed(1234)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):  # weights made on the GPU: seconds, not minutes
        model = LlamaForCausalLM(config)
    model.eval()

    def run(batch, new):
        ids = torch.randint(0, config.vocab_size, (batch, args.prompt_tokens), device="cuda")
        with torch.inference_mode():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0,
                                 top_p=0.95, top_k=0, max_new_tokens=new, min_new_tokens=new, pad_token_id=0)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
        assert out.shape == (batch, args.prompt_tokens + new), out.shape
        return seconds

    run(1, 4)  # warm-up: kernels, allocator
    for batch in (int(b) for b in args.batches.split(",")):
        seconds = run(batch, args.new_tokens)
        print(json.dumps({"batch": batch, "prompt": args.prompt_tokens, "new": args.new_tokens,
                          "seconds": round(seconds, 3), "tok_s": round(batch * args.new_tokens / seconds, 1)}),
              flush=True)


if __name__ == "__main__":
    main()
