#!/usr/bin/env python3
"""Logits as numpy arrays: the most likely next tokens after a prompt, with probabilities.

    python3 examples/python/next_token.py [MODEL.gguf] [-p PROMPT] [-k TOP]

Model.logits runs one forward pass and returns float32 [tokens, vocab] that shares the
library's buffer (no copy). The model defaults to $LLMOS_MODEL, else
../shared/models/stories260K.gguf beside the checkout.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

import llmos


def default_model() -> str:
    env = os.environ.get("LLMOS_MODEL")
    if env:
        return env
    shared = os.environ.get("LLMOS_SHARED_DIR") or Path(__file__).resolve().parents[2].parent / "shared"
    return str(Path(shared) / "models" / "stories260K.gguf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=default_model())
    parser.add_argument("-p", "--prompt", default="Once upon a time")
    parser.add_argument("-k", "--top", type=int, default=5)
    args = parser.parse_args()

    with llmos.Model(args.model) as model:
        ids = np.asarray(model.tokenize(args.prompt), dtype=np.int32)
        logits = model.logits(ids)
        print(f"prompt {args.prompt!r}: {len(ids)} tokens -> logits {logits.dtype}{list(logits.shape)}")
        last = logits[-1].astype(np.float64)
        probs = np.exp(last - last.max())
        probs /= probs.sum()
        for token in np.argsort(-probs)[: args.top]:
            piece = model.detokenize([model.bos, int(token)]) if model.bos is not None else ""
            print(f"  {int(token):6d} {probs[token]:7.2%}  {piece!r}")
        # Perplexity of the prompt itself: how surprised the model is by each next token.
        shifted = logits[:-1].astype(np.float64)
        log_probs = shifted - shifted.max(axis=1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
        nll = -log_probs[np.arange(len(ids) - 1), ids[1:]].mean()
        print(f"prompt perplexity: {np.exp(nll):.2f}")


if __name__ == "__main__":
    main()
