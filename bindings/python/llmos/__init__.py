"""llmos: run Llama-family GGUF models from Python.

    import llmos
    model = llmos.Model("stories260K.gguf")
    with llmos.Engine(model) as engine:
        print(engine.generate("Once upon a time", max_tokens=40, temperature=0))
        for piece in engine.stream("The sun was", max_tokens=20):
            print(piece, end="", flush=True)

The compute runs in C++ with the GIL released, so other Python threads keep running and
several threads can generate on one engine at once (the engine batches them). Errors are
`LlmosError` subclasses carrying the library's message; see docs/python.md.
"""

from __future__ import annotations

from typing import Any, Iterator, List, Optional, Sequence, Union

from . import _llmos
from ._llmos import (
    BusyError,
    CancelledError,
    ClosedError,
    FormatError,
    InternalError,
    InvalidArgumentError,
    IoError,
    LlmosError,
    Model,
    NoSuchFileError,
    NotFoundError,
    OutOfMemoryError,
    RequestResult,
    TokenEvent,
    UnsupportedError,
)

__version__: str = _llmos.__version__

__all__ = [
    "BusyError",
    "CancelledError",
    "ClosedError",
    "Engine",
    "FormatError",
    "InternalError",
    "InvalidArgumentError",
    "IoError",
    "LlmosError",
    "Model",
    "NoSuchFileError",
    "NotFoundError",
    "OutOfMemoryError",
    "RequestResult",
    "TokenEvent",
    "TokenStream",
    "UnsupportedError",
    "__version__",
]

Prompt = Union[str, Sequence[int]]


class TokenStream(Iterator[str]):
    """The text pieces of one request as they are generated (Engine.stream returns one).

    Iterating yields non-empty str pieces; their concatenation is the continuation that
    Engine.generate would return. Closing the stream early (close(), leaving a `with` block,
    breaking out of a for loop over it and dropping it) cancels the request and releases it.
    After the last piece, `finish_reason` says why it ended ('length', 'eos', 'stop',
    'cancelled'); a request that failed raises LlmosError from the iteration instead.
    """

    def __init__(self, engine: Engine, request_id: int) -> None:
        self._engine: Optional[Engine] = engine
        self.request_id: int = request_id
        self.tokens: List[int] = []
        self.finish_reason: Optional[str] = None

    def __iter__(self) -> TokenStream:
        return self

    def __next__(self) -> str:
        while self._engine is not None:
            event = self._engine.next_event(self.request_id)
            assert event is not None  # no timeout: next_event waits for an event
            if not event.finished:
                self.tokens.append(event.token)  # type: ignore[arg-type]
            else:
                self._engine = None  # the final event released the request
                self.finish_reason = event.finish_reason
                if event.finish_reason == "error":
                    raise LlmosError(f"request {self.request_id} failed: {event.error}")
            if event.text:
                return event.text
        raise StopIteration

    def close(self) -> None:
        """Cancels the request if it is still running and releases it."""
        engine, self._engine = self._engine, None
        if engine is None or engine.closed:
            return
        engine.cancel(self.request_id)
        try:
            engine.wait(self.request_id)  # returns once the cancellation took effect
        except NotFoundError:
            pass  # the engine released it already (closed meanwhile)
        if self.finish_reason is None:
            self.finish_reason = "cancelled"

    def __enter__(self) -> TokenStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass  # never raise from a finalizer (e.g. at interpreter exit)


class Engine(_llmos.Engine):
    """The multi-client serving engine (paged KV cache, continuous batching, priorities).

    Engine(model, *, threads=None, kv_cache_blocks=0, kv_cache_bytes=0, block_size=16,
           kv_dtype="f16", prefix_caching=True, watermark=0.01, swap_space_bytes=256 MiB,
           max_batched_tokens=512, max_sequences=64, max_model_len=0, chunked_prefill=True,
           preemption="recompute", aging_steps=64, quotas=None, default_quota=None,
           reject_unknown_clients=False)

    Request keywords (generate, stream, submit): max_tokens=128, temperature=0.8, top_k=40,
    top_p=0.95, min_p=0.05, repeat_penalty=1.0, repeat_last_n=64, seed=None (random),
    stop=None (str or list of str), stop_token_ids=None, ignore_eos=False,
    priority="interactive" ("realtime" | "interactive" | "background"), client_id="".
    """

    def stream(self, prompt: Prompt, **params: Any) -> TokenStream:
        """Submits `prompt` now (bad parameters raise here) and returns its TokenStream."""
        if "on_event" in params:
            raise TypeError("stream() does not take on_event; use submit() for callbacks")
        return TokenStream(self, self.submit(prompt, **params))
