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
    assert re.fullmatch(r"minio/minio:RELEASE\.\d{4}-\d\d-\d\dT[\d-]+Z", SERVICES["minio"]["image"])


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
    assert "spark.driver.host=${SPARK_DRIVER_HOST}" in STACK_CONFIG["spark"]["conf"]
    assert all(environment(s)["LUIGI_CONFIG_PATH"] == "/app/docker/luigi.cfg" for s in APP_SERVICES)


def test_state_lives_on_named_volumes():
    assert "minio-data:/data" in SERVICES["minio"]["volumes"]
    assert f"luigid-state:{environment('luigid')['LUIGID_STATE_DIR']}" in SERVICES["luigid"]["volumes"]
    assert STACK_CONFIG["scheduler"]["state_path"].startswith("${LUIGID_STATE_DIR}/")
    assert STACK_CONFIG["scheduler"]["record_task_history"] == "true"
    assert STACK_CONFIG["task_history"]["db_connection"].startswith("sqlite:///${LUIGID_STATE_DIR}/")
    assert {"minio-data", "luigid-state"} <= set(COMPOSE["volumes"])
    assert SERVICES["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]


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
    variables = set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE))
    used = set(re.findall(r"\$\{([A-Z_]+)[:}]", (REPO / "docker-compose.yml").read_text()))
    assert used - {"MOVIELENS_ALS_VERSION"} <= variables
    assert ".env" in (REPO / ".dockerignore").read_text().split()


def test_the_image_is_pinned_non_root_and_installs_the_pinned_versions():
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim-bookworm$", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^USER app$", DOCKERFILE, re.MULTILINE)
    assert "-c docker/constraints.txt" in DOCKERFILE and "openjdk-17-jre-headless" in DOCKERFILE
    assert re.search(r"SUPERCRONIC_SHA1SUM=[0-9a-f]{40}", DOCKERFILE) and "sha1sum -c" in DOCKERFILE
    pins = dict(line.split("==") for line in (REPO / "docker/constraints.txt").read_text().splitlines() if "==" in line)
    import luigi
    import pyspark

    assert pins["luigi"] == luigi.__version__ and pins["pyspark"] == pyspark.__version__
    assert "SQLAlchemy" in pins  # luigid's task history


def test_the_crontab_calls_the_cron_entry_point():
    [line] = [line for line in (REPO / "docker/crontab").read_text().splitlines() if line and line[0].isdigit()]
    command = line.split(None, 5)[5]
    assert command.split()[0] == "movielens-als-cron"
    metadata = configparser.ConfigParser()
    metadata.read(REPO / "setup.cfg")
    assert "movielens-als-cron = pipeline.cli:cron_main" in metadata["options.entry_points"]["console_scripts"]
    assert SERVICES["runner"]["command"] == ["supercronic", "/app/docker/crontab"]


def test_the_entrypoint_advertises_the_containers_address(tmp_path):
    result = subprocess.run(
        [str(REPO / "docker/entrypoint.sh"), "sh", "-c", 'echo "$SPARK_DRIVER_HOST"'],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert re.fullmatch(r"[0-9a-f.:]+\n", result.stdout)
    kept = subprocess.run(
        [str(REPO / "docker/entrypoint.sh"), "sh", "-c", 'echo "$SPARK_DRIVER_HOST"'],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "SPARK_DRIVER_HOST": "10.1.2.3"},
    )
    assert kept.stdout == "10.1.2.3\n"
