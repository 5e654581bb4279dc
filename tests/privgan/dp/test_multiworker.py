"""DP-SGD and DPGAN under MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1, CPU only.

The tests start the workers of `multiworker_job` with `TF_CONFIG` (ports picked free at test time) twice:
once for the fits and then a backed-up fit whose second worker is killed, once to resume that fit. Every
launch is bounded in time (the workers also stop themselves after `TIMEOUT`) and always stopped; what
the workers wrote is compared with the same fits in this process (one device). Marked `multiworker`:
`pytest -m "not multiworker"` skips them.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from privgan.accounting import max_steps
from privgan.dp import DPBackupAndRestore
from tests.privgan.dp import multiworker_job as job

# One xdist worker runs them all (pytest.ini: --dist loadgroup), so the module's launch happens once.
pytestmark = [pytest.mark.multiworker, pytest.mark.xdist_group("multiworker")]

ROOT = pathlib.Path(__file__).resolve().parents[3]
# Seconds a launch may take: about 30 s on an idle 2-core machine, a minute or two on a loaded one.
TIMEOUT = float(os.environ.get("PRIVGAN_MULTIWORKER_TIMEOUT", 300))
WORKERS = 2
EPOCHS = 5  # of the backed-up fit, 8 DP steps each


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Workers:
    """Worker processes of one cluster on 127.0.0.1; `stop` kills whatever still runs."""

    def __init__(self, output_dir, **arguments):
        self.output_dir = pathlib.Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(WORKERS)]}
        flags = [f"--{name}={value}" for name, value in {"timeout": TIMEOUT, **arguments}.items()]
        self.processes = []
        for index in range(WORKERS):
            environment = dict(
                os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            )
            log = open(self.output_dir / f"worker{index}.log", "wb")  # noqa: SIM115 (closed in stop)
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "tests.privgan.dp.multiworker_job", f"--output_dir={self.output_dir}", *flags],
                cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
            ))
            self.processes[-1].log = log

    def wait(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        return [p.returncode for p in self.processes]

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
            process.log.close()

    def log(self, index):
        return (self.output_dir / f"worker{index}.log").read_text(errors="replace")[-3000:]

    def results(self, job):
        """What each worker's `job` wrote: `(numbers, arrays)` per worker."""
        folder = self.output_dir
        return [(json.loads((folder / f"{job}{i}.json").read_text()), dict(np.load(folder / f"{job}{i}.npz")))
                for i in range(WORKERS)]


def _run(output_dir, *, jobs, **arguments):
    workers = Workers(output_dir, jobs=jobs, **arguments)
    try:
        codes = workers.wait()
    finally:
        workers.stop()
    assert codes == [0] * WORKERS, f"worker exit codes {codes}\n{workers.log(0)}\n{workers.log(1)}"
    return workers.results(jobs)


def _weights(arrays, prefix):
    return [arrays[f"{prefix}_{i}"] for i in range(len([k for k in arrays if k.startswith(f"{prefix}_")]))]


def _assert_weights_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def launch(tmp_path_factory):
    """One launch: the fits, then a backed-up fit whose second worker is killed after the second epoch.

    Returns:
        `(fits, backups)`: the workers' fit results and the `DPBackupAndRestore` of the killed fit.
    """
    root = tmp_path_factory.mktemp("launch")
    backups = DPBackupAndRestore(root / "backup")
    workers = Workers(root / "workers", jobs="fits,backup", backup_dir=backups.backup_dir, epochs=EPOCHS,
                      pause=1.0)
    try:
        deadline = time.monotonic() + TIMEOUT
        # Both workers start the backed-up fit only after writing their fit results.
        while not any(epoch >= 2 for epoch, _ in backups.backups()):
            assert time.monotonic() < deadline, f"no backup in time\n{workers.log(0)}\n{workers.log(1)}"
            ended = [p.poll() is not None for p in workers.processes]
            assert not any(ended), f"a worker ended\n{workers.log(0)}\n{workers.log(1)}"
            time.sleep(0.2)
        workers.processes[1].send_signal(signal.SIGKILL)  # mid-run, between two epochs of the chief
        time.sleep(2.0)  # the chief, alone, must not write a further backup
    finally:
        workers.stop()
    return workers.results("fits"), backups


@pytest.fixture(scope="module")
def fits(launch):
    return launch[0]


def test_workers_take_the_chiefs_secrets_and_stop_together_when_states_differ(fits):
    (first, _), (second, _) = fits
    assert first["agreed_secret_digest"] == second["agreed_secret_digest"]
    assert first["noise_key_digest"] == second["noise_key_digest"]  # the secret noise key of a fit
    for numbers in (first, second):  # both workers raised, so neither hangs in a collective
        assert "disagree on ['worker index']" in numbers["disagreement_error"]


def test_dp_fit_on_two_workers_equals_one_process(fits):
    single = job.dp_model()
    single.fit(*job.data(), epochs=2, sampling_seed=5, verbose=0)
    for numbers, arrays in fits:
        assert numbers["dp_steps"] == single._steps_taken() == 16
        assert numbers["ledger"] == single.privacy_ledger.to_dict()
        _assert_weights_equal(_weights(arrays, "dp_model"), single.model.get_weights())
        evaluated = single.evaluate(*job.data(), batch_size=16, verbose=0, return_dict=True)
        assert numbers["evaluate"] == pytest.approx(evaluated, rel=1e-4)


def test_dpgan_on_two_workers_equals_one_process(fits):
    single = job.fit_dpgan(job.dpgan())
    for numbers, arrays in fits:
        assert numbers["gan_dp_steps"] == single._steps_taken() == 16
        _assert_weights_equal(_weights(arrays, "gan_d"), single.discriminator.get_weights())
        _assert_weights_equal(_weights(arrays, "gan_g"), single.generator.get_weights())


def test_noise_of_the_summed_update_is_added_once(fits):
    # sigma C / B = 1.5 * 2 / 4; noise on both workers would give sqrt(2) times that.
    for numbers, _ in fits:
        assert numbers["noise_std"] == pytest.approx(0.75, rel=0.03)


def test_budget_stops_every_worker_at_the_same_whole_call(fits):
    limit = max_steps(target_epsilon=job.BUDGET_EPSILON, delta=job.DELTA, noise_multiplier=1.1,
                      sampling_probability=0.125, accountant="rdp")
    assert limit % 3 != 0  # so the rounding to whole calls of steps_per_execution=3 is exercised
    for numbers, _ in fits:
        assert numbers["budget_dp_steps"] == limit - limit % 3
        assert numbers["budget_epsilon"] <= job.BUDGET_EPSILON


class _EpochWeights(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.model.get_weights())


def test_killed_worker_leaves_exact_backups_and_the_restarted_job_resumes(launch, tmp_path):
    _, backups = launch
    reference = _EpochWeights()
    single = job.dp_model()
    single.fit(*job.data(), epochs=EPOCHS, sampling_seed=5, verbose=0, callbacks=[reference])
    found = backups.backups()
    assert found and found[-1][0] < EPOCHS
    for next_epoch, path in found:  # each backup holds exactly the steps it claims, and their weights
        state = json.loads((path / "state.json").read_text())
        assert state == {"next_epoch": next_epoch, "dp_steps": 8 * next_epoch}
        restored = job.dp_model()
        restored.optimizer.build(restored.model.trainable_variables)
        restored.load_weights(path / "model.weights.h5")
        assert restored._steps_taken() == 8 * next_epoch
        _assert_weights_equal(restored.model.get_weights(), reference.weights[next_epoch - 1])

    resumed_from = found[-1][0]
    (first, arrays), (second, _) = _run(tmp_path / "resumed", jobs="backup", backup_dir=backups.backup_dir,
                                        epochs=EPOCHS, pause=0)
    assert first["epochs_run"] == second["epochs_run"] == list(range(resumed_from, EPOCHS))
    assert first["dp_steps"] == 8 * EPOCHS
    assert first["ledger"] == single.privacy_ledger.to_dict()
    _assert_weights_equal(_weights(arrays, "dp_model"), single.model.get_weights())
    assert not backups.backup_dir.exists()  # removed once the fit completed
