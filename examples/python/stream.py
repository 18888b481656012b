#!/usr/bin/env python3
"""Streaming: print a continuation piece by piece, then cancel a second one part-way.

    python3 examples/python/stream.py [MODEL.gguf] [-p PROMPT] [-n TOKENS]

The model defaults to $LLMOS_MODEL, else ../shared/models/stories260K.gguf beside the checkout.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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
    parser.add_argument("-n", "--max-tokens", type=int, default=80)
    args = parser.parse_args()

    model = llmos.Model(args.model)
    with llmos.Engine(model) as engine:
        sys.stdout.write(args.prompt)
        stream = engine.stream(args.prompt, max_tokens=args.max_tokens, temperature=0.0)
        for piece in stream:
            sys.stdout.write(piece)
            sys.stdout.flush()
        print(f"\n[finished: {stream.finish_reason}, {len(stream.tokens)} tokens]")

        # Stop reading after the first sentence: leaving the loop cancels the request, and the
        # engine frees its KV blocks at the next step.
        text = ""
        with engine.stream("The sun was", max_tokens=1000, temperature=0.0, ignore_eos=True) as s:
            for piece in s:
                text += piece
                if "." in piece:
                    break
        print(f"The sun was{text}\n[stopped early: {s.finish_reason}, {len(s.tokens)} tokens]")
        stats = engine.stats()
        print(f"[engine: {stats['finished_requests']} requests finished, "
              f"{stats['cancelled_requests']} cancelled, {stats['kv']['used_blocks']} KV blocks in use]")


if __name__ == "__main__":
    main()
