#!/usr/bin/env python3
"""Batch generation: several prompts submitted together, batched by the engine's scheduler.

    python3 examples/python/batch_generate.py [MODEL.gguf] [-n TOKENS]

The model defaults to $LLMOS_MODEL, else ../shared/models/stories260K.gguf beside the checkout.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import llmos

PROMPTS = [
    "Once upon a time",
    "Tom and Lily went to the",
    "The sun was",
    "One day, a little dog",
]


def default_model() -> str:
    env = os.environ.get("LLMOS_MODEL")
    if env:
        return env
    shared = os.environ.get("LLMOS_SHARED_DIR") or Path(__file__).resolve().parents[2].parent / "shared"
    return str(Path(shared) / "models" / "stories260K.gguf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=default_model())
    parser.add_argument("-n", "--max-tokens", type=int, default=48)
    args = parser.parse_args()

    model = llmos.Model(args.model)
    print(f"model: {model.architecture} '{model.name}', {model.num_layers} layers, "
          f"vocab {model.vocab_size}, {model.backend}")
    with llmos.Engine(model, max_sequences=len(PROMPTS)) as engine:
        start = time.perf_counter()
        # Greedy decoding (temperature 0): the same prompt always gives the same text.
        texts = engine.generate(PROMPTS, max_tokens=args.max_tokens, temperature=0.0)
        seconds = time.perf_counter() - start
        for prompt, text in zip(PROMPTS, texts):
            print(f"--- {prompt!r}\n{prompt}{text}")
        stats = engine.stats()
        print(f"--- {stats['tokens_generated']} tokens in {seconds:.3f} s over "
              f"{stats['steps']} engine steps ({stats['tokens_generated'] / seconds:.0f} tokens/s)")
        # Sampling: a seed makes it reproducible.
        sampled = engine.generate(PROMPTS[0], max_tokens=args.max_tokens, temperature=0.8, seed=42)
        print(f"--- sampled (seed 42)\n{PROMPTS[0]}{sampled}")


if __name__ == "__main__":
    main()
