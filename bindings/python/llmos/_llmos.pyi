"""Type stubs for the llmos extension module (bindings/python/src)."""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypedDict, TypeVar, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

TokenIds = Union[Sequence[int], npt.NDArray[np.int32]]
_M = TypeVar("_M", bound="Model")
_E = TypeVar("_E", bound="Engine")

class LlmosError(Exception):
    code: str

class InvalidArgumentError(LlmosError, ValueError): ...
class IoError(LlmosError, OSError): ...
class NoSuchFileError(IoError, FileNotFoundError): ...
class FormatError(LlmosError, ValueError): ...
class UnsupportedError(LlmosError, NotImplementedError): ...
class OutOfMemoryError(LlmosError, MemoryError): ...
class CancelledError(LlmosError): ...
class NotFoundError(LlmosError, LookupError): ...
class BusyError(LlmosError, RuntimeError): ...
class InternalError(LlmosError, RuntimeError): ...
class ClosedError(LlmosError, ValueError): ...

class Model:
    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        threads: Optional[int] = None,
        *,
        device: str = "cpu",
        reference_kernels: bool = False,
    ) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self: _M) -> _M: ...
    def __exit__(self, *args: object) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def context_length(self) -> int: ...
    @property
    def embedding_length(self) -> int: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def architecture(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def bos(self) -> Optional[int]: ...
    @property
    def eos(self) -> Optional[int]: ...
    @property
    def add_bos(self) -> bool: ...
    @property
    def threads(self) -> int: ...
    @property
    def backend(self) -> str: ...
    def is_eog(self, token: int) -> bool: ...
    def tokenize(
        self, text: Union[str, bytes], add_bos: bool = True, parse_special: bool = False
    ) -> List[int]: ...
    def detokenize(self, tokens: TokenIds, special: bool = False) -> str: ...
    def logits(
        self, tokens: TokenIds, *, last_only: bool = False, kv_dtype: str = "f32"
    ) -> npt.NDArray[np.float32]: ...

class TokenEvent:
    @property
    def request_id(self) -> int: ...
    @property
    def finished(self) -> bool: ...
    @property
    def token(self) -> Optional[int]: ...
    @property
    def text(self) -> str: ...
    @property
    def finish_reason(self) -> Optional[str]: ...
    @property
    def error(self) -> Optional[str]: ...

class RequestResult:
    @property
    def id(self) -> int: ...
    @property
    def prompt_tokens(self) -> List[int]: ...
    @property
    def tokens(self) -> List[int]: ...
    @property
    def text(self) -> str: ...
    @property
    def finish_reason(self) -> str: ...
    @property
    def error(self) -> Optional[str]: ...
    @property
    def time_to_first_token(self) -> float: ...
    @property
    def total_time(self) -> float: ...
    @property
    def num_preemptions(self) -> int: ...
    @property
    def num_cached_prompt_tokens(self) -> int: ...

class ClientQuota(TypedDict, total=False):
    max_running: int
    max_kv_blocks: int
    max_outstanding: int

class KvStats(TypedDict):
    total_blocks: int
    used_blocks: int
    cached_blocks: int
    free_blocks: int
    prefix_queries: int
    prefix_query_tokens: int
    prefix_hit_tokens: int
    prefix_hit_rate: float

class EngineStats(TypedDict):
    num_waiting: int
    num_running: int
    num_preempted: int
    num_swapped: int
    total_preemptions: int
    total_requests: int
    finished_requests: int
    cancelled_requests: int
    steps: int
    prompt_tokens_computed: int
    tokens_generated: int
    decode_tokens_per_second: float
    busy_seconds: float
    kv_block_bytes: int
    swap_used_bytes: int
    kv: KvStats

class Engine:
    def __init__(
        self,
        model: Model,
        *,
        threads: Optional[int] = None,
        kv_cache_blocks: int = 0,
        kv_cache_bytes: int = 0,
        block_size: int = 16,
        kv_dtype: str = "f16",
        prefix_caching: bool = True,
        watermark: float = 0.01,
        swap_space_bytes: int = 268435456,
        max_batched_tokens: int = 512,
        max_sequences: int = 64,
        max_model_len: int = 0,
        chunked_prefill: bool = True,
        preemption: str = "recompute",
        aging_steps: int = 64,
        quotas: Optional[Dict[str, ClientQuota]] = None,
        default_quota: Optional[ClientQuota] = None,
        reject_unknown_clients: bool = False,
    ) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self: _E) -> _E: ...
    def __exit__(self, *args: object) -> None: ...
    def submit(
        self,
        prompt: Union[str, TokenIds],
        *,
        max_tokens: int = 128,
        temperature: float = 0.8,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        repeat_last_n: int = 64,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        stop_token_ids: Optional[TokenIds] = None,
        ignore_eos: bool = False,
        priority: str = "interactive",
        client_id: str = "",
        on_event: Optional[Callable[[TokenEvent], Any]] = None,
        keep_context: bool = False,
        resume_from: Union[str, os.PathLike[str], None] = None,
    ) -> int: ...
    def cancel(self, request_id: int) -> bool: ...
    def next_event(self, request_id: int, timeout: Optional[float] = None) -> Optional[TokenEvent]: ...
    def wait(self, request_id: int) -> RequestResult: ...
    def save_snapshot(self, request_id: int, path: Union[str, os.PathLike[str]]) -> None: ...
    @overload
    def generate(
        self,
        prompts: str,
        *,
        max_tokens: int = 128,
        temperature: float = 0.8,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        repeat_last_n: int = 64,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        stop_token_ids: Optional[TokenIds] = None,
        ignore_eos: bool = False,
        priority: str = "interactive",
        client_id: str = "",
    ) -> str: ...
    @overload
    def generate(
        self,
        prompts: Union[List[str], Tuple[str, ...]],
        *,
        max_tokens: int = 128,
        temperature: float = 0.8,
        top_k: int = 40,
        top_p: float = 0.95,
        min_p: float = 0.05,
        repeat_penalty: float = 1.0,
        repeat_last_n: int = 64,
        seed: Optional[int] = None,
        stop: Union[str, Sequence[str], None] = None,
        stop_token_ids: Optional[TokenIds] = None,
        ignore_eos: bool = False,
        priority: str = "interactive",
        client_id: str = "",
    ) -> List[str]: ...
    def stats(self) -> EngineStats: ...
    def tokenize(
        self, text: Union[str, bytes], add_bos: bool = True, parse_special: bool = False
    ) -> List[int]: ...
    def detokenize(self, tokens: TokenIds, special: bool = False) -> str: ...
    @property
    def max_model_len(self) -> int: ...
    @property
    def kv_cache_blocks(self) -> int: ...

def _close_all_engines() -> None: ...
