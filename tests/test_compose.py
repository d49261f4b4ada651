"""docker-compose.yml and the image, checked without a Docker engine: the Compose schema, and
the wiring between the services, the stack's luigi configuration and the image."""

from __future__ import annotations

import configparser
import re
import subprocess
from urllib.parse import urlsplit

import yaml

from tests.helpers import BIN, REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
STACK_CONFIG = configparser.ConfigParser(interpolation=None)
STACK_CONFIG.read(REPO / "docker" / "luigi.cfg")
DOCKERFILE = (REPO / "docker" / "Dockerfile").read_text()
DEPLOYMENT = (REPO / "docs" / "deployment.md").read_text()
APP_SERVICES = ("spark-master", "spark-worker", "luigid", "runner")


def environment(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}


def test_the_compose_file_follows_the_compose_specification():
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(REPO / "docker-compose.yml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  minio:\n    image: [not, a, string]\n    ports: 9000\n")
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode != 0


def test_the_services_are_all_there_and_share_one_image():
    assert set(SERVICES) == {"minio", *APP_SERVICES}
    assert {SERVICES[s]["build"]["dockerfile"] for s in APP_SERVICES} == {"docker/Dockerfile"}
    assert len({SERVICES[s]["image"] for s in APP_SERVICES}) == 1
    # Docker Hub serves no minio/minio any more: quay.io's last community release, by digest,
    # unless .env names another image.
    assert re.fullmatch(
        r"\$\{MINIO_IMAGE:-quay\.io/minio/minio:RELEASE\.2025-09-07T16-13-09Z@sha256:[0-9a-f]{64}\}",
        SERVICES["minio"]["image"],
    )
    assert "RELEASE.2025-09-07T16-13-09Z" in DEPLOYMENT and "CVE-2025-62506" in DEPLOYMENT


def test_every_host_the_stack_config_names_is_a_service():
    runner = environment("runner")
    named = {
        "scheduler": runner["LUIGID_HOST"],
        "spark master": urlsplit(runner["SPARK_MASTER_URL"]).hostname,
        "S3 endpoint": urlsplit(runner["S3_ENDPOINT_URL"]).hostname,
    }
    assert named == {"scheduler": "luigid", "spark master": "spark-master", "S3 endpoint": "minio"}
    assert runner["LUIGID_PORT"] == "8082" and "--port" in SERVICES["luigid"]["command"]
    assert SERVICES["luigid"]["command"][SERVICES["luigid"]["command"].index("--port") + 1] == "8082"
    assert urlsplit(runner["SPARK_MASTER_URL"]).port == 7077 and "7077" in SERVICES["spark-master"]["command"]
    assert urlsplit(runner["S3_ENDPOINT_URL"]).port == 9000
    # The stack's luigi.cfg reads those variables, so the config and the compose file agree.
    assert STACK_CONFIG["core"]["scheduler_host"] == "${LUIGID_HOST}"
    assert STACK_CONFIG["spark"]["master"] == "${SPARK_MASTER_URL}"
    assert STACK_CONFIG["s3"]["endpoint_url"] == "${S3_ENDPOINT_URL}"
    assert all(environment(s)["LUIGI_CONFIG_PATH"] == "/app/docker/luigi.cfg" for s in APP_SERVICES)


def test_every_variable_the_stack_config_reads_is_set_for_the_runner():
    # `docker compose exec` runs no entrypoint: what docker/luigi.cfg interpolates must come
    # from the compose file or the image, or luigi fails to read its configuration.
    values = [value for section in STACK_CONFIG.values() for value in section.values()]
    used = {name for value in values for name in re.findall(r"\$\{(\w+)\}", value)}
    image_env = set(re.findall(r"^\s*(?:ENV )?(\w+)=", DOCKERFILE, re.MULTILINE))
    assert used and used <= set(environment("runner")) | image_env, used - set(environment("runner")) - image_env
    assert "HOME" in image_env
    # The driver advertises the address Spark finds for its container (nothing to set).
    assert "spark.driver.host" not in STACK_CONFIG["spark"]["conf"]
    assert "spark.movielens.executorWaitSeconds=${SPARK_EXECUTOR_WAIT_SECONDS}" in STACK_CONFIG["spark"]["conf"]


def test_ports_are_published_on_localhost_unless_told_otherwise():
    published = [port for service in SERVICES.values() for port in service.get("ports", [])]
    assert published and all(port.startswith("${PUBLISH_ADDRESS:-127.0.0.1}:") for port in published)
    assert "PUBLISH_ADDRESS=0.0.0.0" in DEPLOYMENT


def test_the_runner_starts_once_every_service_is_healthy():
    for service in ("minio", "spark-master", "spark-worker", "luigid"):
        assert SERVICES[service]["healthcheck"]["test"], service
        assert SERVICES["runner"]["depends_on"][service] == {"condition": "service_healthy"}
    assert SERVICES["spark-worker"]["depends_on"]["spark-master"] == {"condition": "service_healthy"}
    for service in APP_SERVICES:
        assert SERVICES[service]["healthcheck"]["test"] == ["CMD", "python", "/app/docker/healthcheck.py", service]
    assert "docker/healthcheck.py" in DOCKERFILE


def test_every_container_has_a_memory_limit():
    assert all(service.get("mem_limit") for service in SERVICES.values())


def test_state_lives_on_named_volumes():
    assert "minio-data:/data" in SERVICES["minio"]["volumes"]
    assert f"luigid-state:{environment('luigid')['LUIGID_STATE_DIR']}" in SERVICES["luigid"]["volumes"]
    assert STACK_CONFIG["scheduler"]["state_path"].startswith("${LUIGID_STATE_DIR}/")
    assert STACK_CONFIG["scheduler"]["record_task_history"] == "true"
    assert STACK_CONFIG["task_history"]["db_connection"].startswith("sqlite:///${LUIGID_STATE_DIR}/")
    assert {"minio-data", "luigid-state", "runner-logs", "runner-cache"} <= set(COMPOSE["volumes"])
    assert SERVICES["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    # A new volume takes the owner of its mount point in the image: the image's user.
    assert {"runner-logs:/home/app/logs", "runner-cache:/home/app/.cache"} <= set(SERVICES["runner"]["volumes"])
    assert re.search(r"mkdir -p /home/app/logs /home/app/.cache .*\n.*chown -R 10001:10001 /home/app", DOCKERFILE)


def test_luigid_runs_in_the_foreground_and_workers_scale():
    assert "--background" not in SERVICES["luigid"]["command"]
    worker = SERVICES["spark-worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale spark-worker=N works
    assert {"SPARK_WORKER_CORES", "SPARK_WORKER_MEMORY"} <= set(environment("spark-worker"))
    assert environment("spark-worker")["SPARK_WORKER_MEMORY"] == "${SPARK_WORKER_MEMORY:-4g}"


def test_no_secret_is_written_in_the_compose_file():
    for name, service in SERVICES.items():
        for key, value in service.get("environment", {}).items():
            if re.search(r"SECRET|PASSWORD|KEY|TOKEN|ROOT_USER", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), (name, key, value)
    # Only the runner, which reads and writes the bucket, gets the credentials.
    assert [s for s in SERVICES if "AWS_SECRET_ACCESS_KEY" in environment(s)] == ["runner"]


def test_the_example_env_file_marks_its_development_defaults():
    example = (REPO / ".env.example").read_text()
    assert "DEVELOPMENT DEFAULTS ONLY" in example
    variables = set(re.findall(r"^(?:# )?([A-Z_]+)=", example, re.MULTILINE))
    used = set(re.findall(r"\$\{([A-Z_]+)[:}]", (REPO / "docker-compose.yml").read_text()))
    assert used - {"MOVIELENS_ALS_VERSION"} <= variables
    assert ".env" in (REPO / ".dockerignore").read_text().split()
    assert ".env" in (REPO / ".gitignore").read_text().split()


def test_the_image_is_pinned_non_root_and_installs_the_pinned_versions():
    assert re.search(r"^ARG BASE_IMAGE=python:\d+\.\d+\.\d+-slim-bookworm$", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS base$", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^USER app$", DOCKERFILE, re.MULTILINE)
    assert "--no-deps" in DOCKERFILE and "-r /build/wheelhouse/constraints.txt" in DOCKERFILE
    assert "--no-index --find-links /build/wheelhouse" in DOCKERFILE and "pip check" in DOCKERFILE
    assert "openjdk-17-jre-headless" in DOCKERFILE
    assert not re.search(r"\b(curl|wget)\b", DOCKERFILE)  # nothing fetched but Debian's and Python's packages
    pins = dict(line.split("==") for line in (REPO / "docker/constraints.txt").read_text().splitlines() if "==" in line)
    import luigi
    import pyspark

    assert pins["luigi"] == luigi.__version__ and pins["pyspark"] == pyspark.__version__
    assert "SQLAlchemy" in pins and "setuptools" in pins  # luigid's task history; the project's build
    assert "cronsim" in pins  # docker/cron.py, the runner's scheduler
    # Every runtime dependency is pinned, or `pip check` fails the image's build.
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    required = {re.split(r"[<>=!~\[ ]", line)[0] for line in setup["options"]["install_requires"].split("\n") if line}
    assert required - {""} <= set(pins)


def test_the_local_runs_config_stays_out_of_the_image():
    # luigi reads ./luigi.cfg before LUIGI_CONFIG_PATH: in the image it must not exist.
    assert "COPY . " not in DOCKERFILE
    assert "luigi.cfg" in (REPO / ".dockerignore").read_text().split()
    assert re.search(r"^COPY docker/luigi\.cfg .* docker/$", DOCKERFILE, re.MULTILINE)


def test_the_crontab_calls_the_cron_entry_point():
    [line] = [line for line in (REPO / "docker/crontab").read_text().splitlines() if line and line[0].isdigit()]
    command = line.split(None, 5)[5]
    assert command.split()[0] == "movielens-als-cron"
    metadata = configparser.ConfigParser()
    metadata.read(REPO / "setup.cfg")
    assert "movielens-als-cron = pipeline.cli:cron_main" in metadata["options.entry_points"]["console_scripts"]
    assert SERVICES["runner"]["command"] == ["python", "/app/docker/cron.py", "/app/docker/crontab"]
    assert "docker/cron.py" in DOCKERFILE and "docker/crontab" in DOCKERFILE
