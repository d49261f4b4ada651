"""The docker compose stack, built and run in real containers (`make stack-test`; marker
`stack`, left out of `make test`).

Everything runs as a user runs it, with Compose v2 (`docker compose`), and with three changes
that tests/stack/docker-compose.test.yml makes because no image registry is reachable and
traffic stays on this machine: moto's server stands in for MinIO, a mirror serves a generated
release in place of files.grouplens.org, and the crontab fires every minute. The image is built
from a base made from Debian's packages (mmdebstrap, cached) and from the wheels of `make
wheelhouse`, offline. The stack runs on a copy of the working tree, so the README's `cp
.env.example .env` touches no one's .env.

The tests share one stack and run in order: docker-compose 1.29 reads the files as Compose v2
does, the README's commands bring it up and run the chain, then the schedule fires, a job with
no worker fails in bounded time, the only worker is killed mid-fit and the job fails in bounded
time, and the state survives restart and down + up. Every container, network, volume and image
the module made is removed at the end, and a Docker daemon it started is stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from tests.helpers import BIN, REPO, free_port

pytestmark = pytest.mark.stack

BASE_SUITE = "bookworm"
BASE_PACKAGES = (
    "python3,python3-venv,openjdk-17-jre-headless,procps,ca-certificates,libopenblas0-pthread,libblas3,gcc,libc6-dev"
)
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "movielens-als-stack"
APP_SERVICES = ("spark-master", "spark-worker", "luigid", "runner")
# The example credentials of .env.example, which the README's first command copies.
EXAMPLE_USER, EXAMPLE_PASSWORD = "movielens-dev", "change-me-dev-only"
# The runs' hyper-parameters: the README's own command uses the defaults.
KILL_RUN = ["--rank", "8", "--max-iter", "30"]
# How long a job may wait with no executor in the test of a lost worker (the stack's default is 120 s).
KILL_WAIT = 30


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 1.0):
    """Polls `check` until it returns something truthy, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except Exception as e:  # a service that is not up yet fails in many ways
            last_error = e
        time.sleep(interval)
    pytest.fail(
        f"timed out after {timeout:g} s waiting for {what}" + (f" (last error: {last_error})" if last_error else "")
    )


@contextlib.contextmanager
def docker_daemon() -> Iterator[None]:
    """The Docker daemon that answers, or one started here (and stopped at the end, with the
    build cache that Compose v2's BuildKit builds left in it pruned: some GB a run; a daemon
    that was running already keeps its cache)."""
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
        yield
        return
    state = Path(tempfile.mkdtemp(prefix="movielens-als-dockerd-"))
    with open(state / "dockerd.log", "w") as log:
        daemon = subprocess.Popen(["dockerd", "--pidfile", str(state / "dockerd.pid")], stdout=log, stderr=log)
    try:
        wait_for(
            lambda: (
                daemon.poll() is None
                and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
            ),
            60,
            f"dockerd to answer (its log: {state / 'dockerd.log'})",
        )
        yield
    finally:
        if daemon.poll() is None:
            prune = ["docker", "builder", "prune", "--all", "--force"]
            subprocess.run(prune, capture_output=True, check=False, timeout=300)
        daemon.terminate()
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(state, ignore_errors=True)


def base_image_tar() -> Path:
    """A Debian bookworm root with Python 3.11 and Java 17, made with mmdebstrap from Debian's
    packages; cached, keyed by what it is made of."""
    key = hashlib.sha256(f"{BASE_SUITE}|apt|{BASE_PACKAGES}".encode()).hexdigest()[:16]
    tar = CACHE / f"base-{BASE_SUITE}-{key}.tar"
    if not tar.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        pending = tar.with_suffix(f".{os.getpid()}.tmp")
        result = subprocess.run(
            # The format said, not left to the name: a .tmp target would be a directory.
            ["mmdebstrap", "--variant=apt", "--format=tar", f"--include={BASE_PACKAGES}", BASE_SUITE, str(pending)],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        assert result.returncode == 0, "mmdebstrap failed:\n" + result.stderr[-3000:]
        os.replace(pending, tar)
    return tar


def copy_of_the_working_tree(destination: Path) -> None:
    """The files git tracks or would track (uncommitted changes included), and the wheels
    `make stack-test` downloaded: what a fresh clone plus `make wheelhouse` holds."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    for wheels in ("docker/wheelhouse", "tests/stack/wheels"):
        assert (REPO / wheels / ".complete").exists(), f"{wheels} is missing: run make stack-test"
        shutil.copytree(REPO / wheels, destination / wheels, copy_function=os.link)


class Stack:
    """Compose v2 (`docker compose`, as the README's commands say) on the copy."""

    COMPOSE = ("docker", "compose")

    def __init__(self, directory: Path, env: dict[str, str]):
        self.directory = directory
        self.env = env

    def run(
        self, *args: str, timeout: float = 600, check: bool = True, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*self.COMPOSE, *args],
            cwd=self.directory,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, (
                f"docker compose {' '.join(args)}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
            )
        return result

    def shell(self, command: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """A README command line, as written, in a shell on a terminal (`script` gives it one,
        as a user's terminal would, so that `exec` and `run` behave as they do for a user)."""
        return subprocess.run(
            ["script", "--quiet", "--return", "--command", command, "/dev/null"],
            cwd=self.directory,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def containers(self, service: str) -> list[dict]:
        ids = self.run("ps", "-q", service).stdout.split()
        if not ids:
            return []
        return json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, check=True).stdout)

    def unhealthy(self) -> list[str]:
        """The services' containers that are not (yet) healthy, or not running."""
        problems = []
        for service in (*APP_SERVICES, "minio"):
            containers = self.containers(service)
            if not containers:
                problems.append(f"{service}: no container")
            for c in containers:
                health = c["State"].get("Health", {}).get("Status", "no healthcheck")
                if not c["State"]["Running"] or health != "healthy":
                    problems.append(f"{c['Name']}: {c['State']['Status']}, {health}")
        return problems

    def wait_healthy(self, timeout: float = 240) -> None:
        wait_for(lambda: not self.unhealthy(), timeout, "every service to be healthy", interval=2)

    def exec_python(self, container: str, code: str) -> str:
        return subprocess.run(
            ["docker", "exec", container, "python", "-c", code], capture_output=True, text=True, check=True, timeout=60
        ).stdout

    def luigid(self, method: str, **data) -> dict:
        query = urllib.parse.quote(json.dumps(data))
        url = f"http://127.0.0.1:{self.env['LUIGID_PORT']}/api/{method}?data={query}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)["response"]

    def spark_master(self) -> dict:
        url = f"http://127.0.0.1:{self.env['SPARK_MASTER_UI_PORT']}/json/"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)

    def _s3(self):
        return boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.env['MINIO_API_PORT']}",
            region_name="us-east-1",
            aws_access_key_id=EXAMPLE_USER,
            aws_secret_access_key=EXAMPLE_PASSWORD,
        )

    def s3_keys(self) -> set[str]:
        pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.env["MOVIELENS_BUCKET"])
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    def s3_json(self, key: str):
        return json.loads(self._s3().get_object(Bucket=self.env["MOVIELENS_BUCKET"], Key=key)["Body"].read())

    def nightly_log(self) -> str:
        return self.run("exec", "-T", "runner", "sh", "-c", "cat logs/nightly.log 2>/dev/null || true").stdout


def readme_stack_commands() -> list[str]:
    section = (REPO / "docs" / "deployment.md").read_text().split("## The docker compose stack", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)[1]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    if subprocess.run([*Stack.COMPOSE, "version"], capture_output=True, check=False).returncode != 0:
        pytest.fail("Compose v2 (`docker compose`) is not installed: make stack-test installs it")
    run_id = uuid.uuid4().hex[:8]
    project = Path(tempfile.mkdtemp(prefix="movielens-als-stack-"))
    mirror = project / "mirror"
    images = [f"movielens-als:stack-{run_id}", f"movielens-als-stack-standin:stack-{run_id}"]
    base = f"movielens-als-stack-base:{run_id}"
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, project, ignore_errors=True)
        copy_of_the_working_tree(project)
        # A generated release (a quarter of ml-latest-small: 2 cores), served as files.grouplens.org serves it.
        subprocess.run(
            [
                str(BIN / "movielens-als-generate"),
                str(mirror / "ml-latest-small.zip"),
                "--layout",
                "ml-latest-small",
                "--ratings",
                "25000",
                "--users",
                "300",
                "--items",
                "2000",
            ],
            check=True,
            capture_output=True,
        )
        for path in (project, mirror, *mirror.iterdir()):  # readable by the mirror's user
            path.chmod(0o755 if path.is_dir() else 0o644)

        cleanup.enter_context(docker_daemon())
        tar = base_image_tar()
        subprocess.run(["docker", "import", str(tar), base], check=True, capture_output=True, timeout=300)
        cleanup.callback(subprocess.run, ["docker", "rmi", "--force", base], capture_output=True, check=False)
        cleanup.callback(
            subprocess.run,
            ["docker", "image", "prune", "--force", "--filter", "label=org.opencontainers.image.title=movielens-als"],
            capture_output=True,
            check=False,
        )
        cleanup.callback(subprocess.run, ["docker", "rmi", "--force", *images], capture_output=True, check=False)

        # What a user's .env would say here (the environment overrides the .env the README's
        # first command writes): the offline build, free ports, and sizes for a 2-core machine.
        env = dict(
            os.environ,
            COMPOSE_FILE="docker-compose.yml:tests/stack/docker-compose.test.yml",
            COMPOSE_PROJECT_NAME=f"mlstack{run_id}",
            MOVIELENS_ALS_VERSION=f"stack-{run_id}",
            BASE_IMAGE=base,
            OFFLINE_BUILD="1",
            STACK_TEST_MIRROR=str(mirror),
            MOVIELENS_BASE_URL="http://mirror:8000/",
            MOVIELENS_BUCKET="movielens",
            MINIO_API_PORT=str(free_port()),
            MINIO_CONSOLE_PORT=str(free_port()),
            SPARK_MASTER_UI_PORT=str(free_port()),
            LUIGID_PORT=str(free_port()),
            SPARK_WORKER_CORES="1",
            SPARK_WORKER_MEMORY="1g",
            SPARK_WORKER_MEMORY_LIMIT="2g",
            SPARK_EXECUTOR_MEMORY="768m",
            SPARK_DRIVER_MEMORY="1g",
            RUNNER_MEMORY_LIMIT="3g",
            MINIO_MEMORY_LIMIT="1g",
            SPARK_SHUFFLE_PARTITIONS="4",
        )
        for key in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "PUBLISH_ADDRESS", "MINIO_IMAGE"):
            env.pop(key, None)  # from .env, as for a user
        stack = Stack(project, env)
        cleanup.callback(
            stack.run, "down", "--volumes", "--remove-orphans", "--timeout", "30", timeout=300, check=False
        )
        yield stack


def test_docker_compose_1_29_reads_the_files_as_compose_v2_does(stack):
    # The stack runs on Compose v2 only; of docker-compose 1.29 (Debian bookworm's), which still
    # runs where v2 is not installed, what is checked is that it accepts the files (its schema,
    # the interpolation) and finds the same services in them. The credentials are .env's.
    legacy = shutil.which("docker-compose") or pytest.skip("docker-compose is not installed")
    version = subprocess.run([legacy, "version", "--short"], capture_output=True, text=True, check=True).stdout
    if not version.startswith("1."):
        pytest.skip(f"docker-compose is {version.strip()}, not 1.29")
    example = {"MINIO_ROOT_USER": EXAMPLE_USER, "MINIO_ROOT_PASSWORD": EXAMPLE_PASSWORD}
    services = subprocess.run(
        [legacy, "config", "--services"],
        cwd=stack.directory,
        env={**stack.env, **example},
        capture_output=True,
        text=True,
        check=False,
    )
    assert services.returncode == 0, services.stderr[-4000:]
    v2_services = stack.run("config", "--services", extra_env=example).stdout
    assert sorted(services.stdout.split()) == sorted(v2_services.split())


def test_the_image_builds_from_the_dockerfile_for_every_service(stack):
    # Built before the README's `up --build`, the S3 stand-in after the application's image;
    # the credentials are .env's, which the README's first command has not written yet.
    example = {"MINIO_ROOT_USER": EXAMPLE_USER, "MINIO_ROOT_PASSWORD": EXAMPLE_PASSWORD}
    started = time.monotonic()
    # One build serves the four services: they name the same image (the README's `up --build`
    # then finds every layer cached).
    stack.run("build", "runner", timeout=1200, extra_env=example)
    stack.run("build", "minio", timeout=600, extra_env=example)
    print(f"images built in {time.monotonic() - started:.0f} s")
    config = stack.run("config", extra_env=example).stdout
    assert set(re.findall(r"image: (movielens-als:\S+)", config)) == {
        f"movielens-als:{stack.env['MOVIELENS_ALS_VERSION']}"
    }
    [image] = json.loads(
        subprocess.run(
            ["docker", "inspect", f"movielens-als:{stack.env['MOVIELENS_ALS_VERSION']}"],
            capture_output=True,
            check=True,
        ).stdout
    )
    assert image["Config"]["User"] == "app"
    assert "LUIGI_CONFIG_PATH=/app/docker/luigi.cfg" in image["Config"]["Env"]


def test_the_readme_commands_bring_the_stack_up_and_run_the_chain_on_two_workers(stack):
    runs = []
    for command in readme_stack_commands():
        started = time.monotonic()
        result = stack.shell(command)
        print(f"{time.monotonic() - started:5.0f} s  {command}")
        assert result.returncode == 0, f"{command}\n{result.stdout[-6000:]}"
        if "movielens-als" in command:
            runs.append(result.stdout)

    # The README's run (`run --rm`) and its rerun (`exec`) printed the RMSE; the chain's
    # outputs are in the S3 service.
    assert len(runs) == 2 and all(re.search(r"RMSE \d\.\d{4} on \d+ test ratings", run) for run in runs), runs
    stack.wait_healthy()
    keys = stack.s3_keys()
    assert "downloads/ml-latest-small.zip" in keys
    assert any(k.startswith("splits/ml-latest-small/") and k.endswith("train.parquet") for k in keys)
    assert any(k.startswith("evaluations/ml-latest-small/") and k.endswith("/metrics.json") for k in keys)
    assert any(k.startswith("models/ml-latest-small/") and k.endswith("/_SUCCESS") for k in keys)
    # The image's OpenBLAS is the BLAS and LAPACK the fit computed with.
    [model] = [k for k in keys if k.startswith("models/ml-latest-small/") and k.endswith("/model.json")]
    als = stack.s3_json(model)["als"]
    assert als["linear_algebra"] == "JNIBLAS, JNILAPACK"
    assert als["blas_library"] == "/opt/venv/lib/movielens-als/libalsblas.so"  # native/als_blas.c, in the image

    # luigid, through its port on 127.0.0.1, shows the tasks done.
    done = {task["name"] for task in stack.luigid("task_list", status="DONE").values()}
    assert {"BucketReady", "DownloadedZip", "SplitData", "TrainedALS", "EvaluatedRMSE"} <= done

    # Two workers, each of which ran an executor of the fit: the executors, in other
    # containers, registered with the driver in the runner's.
    workers = stack.containers("spark-worker")
    assert len(workers) == 2
    fits = [app["id"] for app in stack.spark_master()["completedapps"] if app["name"].startswith("TrainedALS")]
    assert fits
    for worker in workers:
        state = json.loads(
            stack.exec_python(
                worker["Id"],
                "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8081/json/').read().decode())",
            )
        )
        assert {e["appid"] for e in state["finishedexecutors"]} & set(fits), worker["Name"]

    # The runner is not root, and no port is open beyond 127.0.0.1.
    assert stack.run("exec", "-T", "runner", "id", "-u").stdout.strip() == "10001"
    for service in ("minio", "luigid", "spark-master"):
        for container in stack.containers(service):
            bindings = [b for ports in container["NetworkSettings"]["Ports"].values() if ports for b in ports]
            assert bindings and {b["HostIp"] for b in bindings} == {"127.0.0.1"}, (service, bindings)


def test_the_scheduled_entry_fires_and_logs_to_the_volume(stack):
    # tests/stack/crontab runs docker/crontab's command every minute; the README's run made
    # it a no-op, so it finishes in seconds.
    log = wait_for(
        lambda: (text := stack.nightly_log()) and "finished with exit code 0" in text and text,
        150,
        "the scheduled entry to fire and finish",
        interval=3,
    )
    assert re.search(r"starting: movielens-als", log)
    assert "starting entry 1" in stack.run("logs", "--no-color", "runner").stdout
    owner = stack.run("exec", "-T", "runner", "stat", "-c", "%u", "logs/nightly.log").stdout.strip()
    assert owner == "10001"


def test_a_job_with_no_worker_fails_in_bounded_time_saying_what_to_check(stack):
    stack.run("stop", "spark-worker", timeout=120)
    try:
        started = time.monotonic()
        result = stack.run(
            "exec",
            "-T",
            "-e",
            "SPARK_EXECUTOR_WAIT_SECONDS=15",
            "runner",
            "movielens-als",
            "--rank",
            "3",
            timeout=300,
            check=False,
        )
        elapsed = time.monotonic() - started
    finally:
        stack.run("start", "spark-worker", timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 30, output[-4000:]  # [retcode] task_failed
    assert "no Spark executor registered within 15 s with the master spark://spark-master:7077" in output
    assert elapsed < 180
    stack.wait_healthy()


def test_the_only_worker_killed_mid_fit_fails_the_job_in_bounded_time_and_a_rerun_completes(stack):
    # The compose file's own scale: one worker, whose loss leaves the job no executor.
    stack.run("up", "-d", "--no-recreate", "--scale", "spark-worker=1", timeout=300)
    stack.wait_healthy()
    [victim] = stack.containers("spark-worker")
    flags_before = {k for k in stack.s3_keys() if k.endswith("/_SUCCESS")}
    wait = f"SPARK_EXECUTOR_WAIT_SECONDS={KILL_WAIT}"
    run = subprocess.Popen(
        [*stack.COMPOSE, "exec", "-T", "-e", wait, "runner", "movielens-als", *KILL_RUN],
        cwd=stack.directory,
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(run.stdout), daemon=True)
    reader.start()
    try:

        def fitting():
            tasks = stack.luigid("task_list", status="RUNNING").values()
            return any(
                t["name"] == "TrainedALS" and (t.get("status_message") or "").startswith("fitting") for t in tasks
            )

        wait_for(fitting, 240, "the fit to start", interval=0.3)
        subprocess.run(["docker", "kill", victim["Id"]], check=True, capture_output=True)
        killed_at = time.monotonic()
        code = run.wait(KILL_WAIT + 300)
        elapsed = time.monotonic() - killed_at
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        reader.join(10)
    log = "".join(output)
    print(f"the run failed {elapsed:.0f} s after the worker's container was killed")

    assert code == 30, log[-4000:]  # [retcode] task_failed
    assert "no Spark executor is left for this job on the master spark://spark-master:7077" in log, log[-4000:]
    assert elapsed < KILL_WAIT + 120
    assert {k for k in stack.s3_keys() if k.endswith("/_SUCCESS")} == flags_before  # no model looks complete
    # Docker restarts no container that `docker kill` stopped: started again, it registers anew.
    subprocess.run(["docker", "start", victim["Id"]], check=True, capture_output=True)
    stack.wait_healthy()
    rerun = stack.run("exec", "-T", "runner", "movielens-als", *KILL_RUN, timeout=600, check=False)
    assert rerun.returncode == 0, (log + rerun.stdout + rerun.stderr)[-6000:]
    assert re.search(r"RMSE \d\.\d{4}", rerun.stdout)
    assert len({k for k in stack.s3_keys() if k.endswith("/_SUCCESS")}) > len(flags_before)


def test_luigid_state_and_the_s3_data_survive_restart_and_down_up(stack):
    keys = stack.s3_keys()
    # luigid forgets finished tasks ten minutes after their worker left; the latest fit's
    # tasks are younger than that. Its task history keeps everything.
    latest = {t for t, task in stack.luigid("task_list", status="DONE").items() if task["name"] == "TrainedALS"}
    assert latest
    history_query = (
        "import sqlite3; print(sqlite3.connect('/var/lib/luigid/history.db').execute("
        '"SELECT COUNT(*) FROM tasks JOIN task_events ON task_events.task_id = tasks.id '
        "WHERE tasks.name = 'TrainedALS' AND task_events.event_name = 'DONE'\").fetchone()[0])"
    )
    fits_in_history = int(stack.exec_python(stack.containers("luigid")[0]["Id"], history_query))
    assert fits_in_history >= 2  # the README's and the rerun after the kill

    stack.run("restart", timeout=300)
    stack.wait_healthy()
    assert stack.s3_keys() == keys
    assert latest <= set(stack.luigid("task_list", status="DONE"))

    stack.run("down", "--timeout", "30", timeout=300)
    assert not stack.run("ps", "-q").stdout.strip()
    stack.run("up", "-d", timeout=600)
    stack.wait_healthy()
    assert stack.s3_keys() == keys
    assert latest <= set(stack.luigid("task_list", status="DONE"))
    assert int(stack.exec_python(stack.containers("luigid")[0]["Id"], history_query)) == fits_in_history
    # The outputs are where the pipeline looks for them: a rerun has nothing to fit.
    rerun = stack.run("exec", "-T", "runner", "movielens-als", timeout=300, check=False)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-4000:]
    assert re.search(r"RMSE \d\.\d{4}", rerun.stdout)
    assert not [app for app in stack.spark_master()["completedapps"] if app["name"].startswith("TrainedALS")]
