"""The GIL is released while the engine works, and several Python threads share one engine."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List

import pytest

import llmos

LONG = dict(max_tokens=600, ignore_eos=True, temperature=0.0)


def test_generate_releases_the_gil(engine: llmos.Engine) -> None:
    window: List[float] = []
    ticks: List[float] = []
    done = threading.Event()

    def work() -> None:
        window.append(time.perf_counter())
        engine.generate("Once upon a time", **LONG)
        window.append(time.perf_counter())
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0)  # plain Python work, as fast as the GIL lets it
    worker.join()
    start, end = window
    inside = [t for t in ticks if start < t < end]
    assert end - start > 0.05, "generate finished too fast to observe"
    # With the GIL held for the whole call, the main thread could not run in between.
    assert len(inside) > 100, f"main thread ran {len(inside)} times during {end - start:.3f}s"
    covered = (max(inside) - min(inside)) / (end - start)
    assert covered > 0.5


def test_logits_releases_the_gil(own_model: llmos.Model) -> None:
    ids = (own_model.tokenize("Once upon a time there was a girl. ") * 200)[:2000]
    window: List[float] = []
    ticks: List[float] = []
    done = threading.Event()

    def work() -> None:
        window.append(time.perf_counter())
        own_model.logits(ids)
        window.append(time.perf_counter())
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0)
    worker.join()
    start, end = window
    assert len([t for t in ticks if start < t < end]) > 10


def test_several_threads_share_one_engine(engine: llmos.Engine, expected_greedy) -> None:
    prompts = [e["prompt"] for e in expected_greedy] * 3
    expected = {p: engine.generate(p, max_tokens=50, temperature=0.0) for p in set(prompts)}
    barrier = threading.Barrier(len(prompts))

    def one(prompt: str) -> str:
        barrier.wait()
        if prompt.startswith("The"):
            return "".join(engine.stream(prompt, max_tokens=50, temperature=0.0))
        return engine.generate(prompt, max_tokens=50, temperature=0.0)

    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        results = list(pool.map(one, prompts))
    assert results == [expected[p] for p in prompts]
    stats = engine.stats()
    assert stats["finished_requests"] == len(prompts) + len(expected)
    assert stats["num_running"] == 0


def test_closing_the_engine_from_another_thread(model: llmos.Model) -> None:
    engine = llmos.Engine(model)
    errors: List[BaseException] = []
    started = threading.Event()

    def work() -> None:
        started.set()
        try:
            engine.generate(["Once upon a time"] * 4, max_tokens=1500, ignore_eos=True)
        except BaseException as e:  # noqa: BLE001 - recorded for the assertion below
            errors.append(e)

    worker = threading.Thread(target=work)
    worker.start()
    started.wait()
    time.sleep(0.2)
    engine.close()
    worker.join(timeout=60)
    assert not worker.is_alive(), "generate did not return after close()"
    assert len(errors) == 1 and isinstance(errors[0], llmos.CancelledError)


def test_engines_left_open_are_closed_at_exit(model_path) -> None:
    import subprocess
    import sys

    code = (
        "import llmos, sys\n"
        f"m = llmos.Model({str(model_path)!r})\n"
        "e = llmos.Engine(m)\n"
        "got = []\n"
        "e.submit('Once upon a time', max_tokens=1500, ignore_eos=True, on_event=got.append)\n"
        "s = e.stream('The sun was', max_tokens=1500, ignore_eos=True)\n"
        "next(s)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize("n", [1, 4])
def test_callbacks_from_many_requests(engine: llmos.Engine, n: int) -> None:
    lock = threading.Lock()
    texts = [""] * n
    finished = threading.Semaphore(0)

    def make(i: int):
        def on_event(ev: llmos.TokenEvent) -> None:
            with lock:
                texts[i] += ev.text
            if ev.finished:
                finished.release()
        return on_event

    for i in range(n):
        engine.submit("The sun was", max_tokens=30, temperature=0.0, on_event=make(i))
    for _ in range(n):
        assert finished.acquire(timeout=30)
    expected = engine.generate("The sun was", max_tokens=30, temperature=0.0)
    assert texts == [expected] * n


def test_ctrl_c_interrupts_generate_and_cancels_its_requests(engine: llmos.Engine) -> None:
    import _thread

    timer = threading.Timer(0.2, _thread.interrupt_main)  # as if SIGINT arrived
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        engine.generate(["Once upon a time"] * 3, max_tokens=1800, ignore_eos=True)
    timer.join()
    assert time.monotonic() - start < 30
    stats = engine.stats()
    assert stats["cancelled_requests"] == 3
    assert stats["num_running"] == 0 and stats["num_waiting"] == 0
    assert stats["kv"]["used_blocks"] == 0
    # The engine is still usable afterwards.
    assert engine.generate("The sun was", max_tokens=3, temperature=0.0)


def test_ctrl_c_interrupts_wait_and_leaves_the_request_running(engine: llmos.Engine) -> None:
    import _thread

    request_id = engine.submit("Once upon a time", max_tokens=1800, ignore_eos=True)
    timer = threading.Timer(0.2, _thread.interrupt_main)  # as if SIGINT arrived
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        engine.wait(request_id)
    timer.join()
    assert time.monotonic() - start < 30
    # Still there: it can be cancelled and waited for, and then its blocks are free.
    assert engine.cancel(request_id)
    result = engine.wait(request_id)
    assert result.finish_reason == "cancelled"
    assert len(result.tokens) < 1800
    assert engine.stats()["kv"]["used_blocks"] == 0
