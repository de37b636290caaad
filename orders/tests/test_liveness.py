"""Whether the process (or, in a pool of threads, the thread) that claimed a step lives."""

import os
import socket
import subprocess
import sys
import threading

from engine.liveness import claimer_alive, this_process


def _claim_in_a_thread(release: threading.Event) -> tuple[threading.Thread, str]:
    claimed = []
    ready = threading.Event()

    def run() -> None:
        claimed.append(this_process())
        ready.set()
        release.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    ready.wait(10)
    return thread, claimed[0]


def test_a_claim_made_in_the_main_thread_names_the_host_and_the_process():
    assert this_process() == f"{socket.gethostname()}:{os.getpid()}"


def test_a_claim_made_in_another_thread_names_the_thread_too():
    release = threading.Event()
    thread, claim = _claim_in_a_thread(release)
    release.set()
    thread.join()

    assert claim == f"{socket.gethostname()}:{os.getpid()}/{thread.ident}"


def test_a_claim_of_another_running_thread_of_this_process_is_alive_until_it_ends():
    release = threading.Event()
    thread, claim = _claim_in_a_thread(release)

    alive_while_running = claimer_alive(claim, claimed_at=None)
    release.set()
    thread.join()

    assert (alive_while_running, claimer_alive(claim, claimed_at=None)) == (True, False)


def test_the_asking_threads_own_earlier_claim_is_over():
    answers = []

    def run() -> None:
        answers.append(claimer_alive(this_process(), claimed_at=None))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()

    assert answers == [False]


def test_a_claim_of_this_process_made_in_its_main_thread_is_over():
    assert claimer_alive(this_process(), claimed_at=None) is False


def test_a_claim_of_a_live_process_on_this_host_is_alive_and_of_a_dead_one_is_over():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    claim = f"{socket.gethostname()}:{child.pid}"
    alive = claimer_alive(claim, claimed_at=None)
    child.kill()
    child.wait()

    assert (alive, claimer_alive(claim, claimed_at=None)) == (True, False)
