"""The production stack in docker-compose.yml and the image built by deploy/Dockerfile.

Static checks only: the file is parsed, never run, so they hold on machines without
Docker. Compose interpolation (``${VAR:-default}``) is left unexpanded. Least privilege is
checked here too: secrets come from files (compose ``secrets:``), every ERIOP service
connects to PostgreSQL as its own login role, administration ports are published on the
loopback interface only, and the image installs a hash-locked dependency set.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
LOCK = REPO / "deploy" / "requirements.lock"
SECRETS_SCRIPT = REPO / "scripts" / "compose-secrets.sh"

EXPECTED_SERVICES = {
    "kafka",
    "db",
    "redis",
    "migrate",
    "db-roles",
    "worker",
    "prometheus",
    "alertmanager",
    "grafana",
}
#: container ports of status pages and administration UIs: never on every interface
ADMIN_PORTS = {9108, 9109, 9110, 9111, 9090, 9093, 3000, 5432}
#: ports meant for devices, gateways and consoles on other hosts
PUBLIC_PORTS = {9094, 6379, 1883, 9500}
#: where an ERIOP service finds a secret named like the variable it replaces
SECRETS_DIR = "/run/secrets"
NEEDS_HEALTHCHECK = ("kafka", "db", "redis", "worker")
DEPENDS_ON_CONDITIONS = {
    "service_started",
    "service_healthy",
    "service_completed_successfully",
}
WORKER_ENV = (
    "ERIOP_KAFKA_BOOTSTRAP",
    "ERIOP_METRICS_PORT",
    "ERIOP_KAFKA__IDEMPOTENCE",
)
WAL_ARCHIVE = "/var/lib/postgresql/wal-archive"
_SECRET_KEY = re.compile(r"(^|_)(PASSWORD|SECRET|TOKEN|AUTH|KEY)$", re.IGNORECASE)
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {k: v for k, v in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _expand(value: str) -> str:
    """Compose interpolation: defaults applied, required variables replaced by their name."""

    def substitute(match: re.Match[str]) -> str:
        if match["op"] in {"-", ":-"}:
            return match["arg"]
        return match["name"].lower()

    return _INTERPOLATION.sub(substitute, value)


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _volumes(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, source, target) with kind ``bind`` or ``volume``."""
    mounts = []
    for item in service.get("volumes") or []:
        if isinstance(item, dict):
            kind, source, target = item["type"], item.get("source", ""), item["target"]
        else:
            parts = item.split(":")
            source, target = parts[0], parts[1]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        mounts.append((kind, source, target))
    return mounts


def _ports(service: dict[str, Any]) -> list[tuple[str | None, int]]:
    """(host port or None, container port) for every published port."""
    published = []
    for item in service.get("ports") or []:
        if isinstance(item, dict):
            host = item.get("published")
            published.append((None if host is None else str(host), int(item["target"])))
            continue
        spec = str(item).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        host = parts[-2] if len(parts) >= 2 else None
        published.append((host, int(parts[-1])))
    return published


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _healthcheck_test(service: dict[str, Any]) -> str:
    check = service.get("healthcheck") or {}
    test = check.get("test")
    return " ".join(test) if isinstance(test, list) else str(test or "")


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _secrets(service: dict[str, Any]) -> dict[str, str]:
    """target file name -> declared secret, for every secret a service mounts."""
    mounted = {}
    for item in service.get("secrets") or []:
        if isinstance(item, str):
            mounted[item] = item
        else:
            mounted[item.get("target", item["source"])] = item["source"]
    return mounted


def _eriop_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run the ERIOP image."""
    return {name: s for name, s in services.items() if "build" in s}


def _published(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(host address, container port) of every published port; "" for all interfaces."""
    published = []
    for item in service.get("ports") or []:
        if isinstance(item, dict):
            published.append((_expand(str(item.get("host_ip", ""))), int(item["target"])))
            continue
        spec = _expand(str(item).split("/", 1)[0])
        parts = spec.rsplit(":", 2)
        address = parts[0] if len(parts) == 3 else ""
        published.append((address, int(parts[-1])))
    return published


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _worker_scrape_targets() -> list[str]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["eriop-worker"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    return [target for static in job["static_configs"] for target in static["targets"]]


# ---------------------------------------------------------------------------- services


def test_expected_services_are_defined(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= EXPECTED_SERVICES


def test_images(services: dict[str, dict[str, Any]]) -> None:
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["db"]["image"] == "timescale/timescaledb-ha:pg15"
    assert services["redis"]["image"] == "redis:7-alpine"
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        assert tag not in {"", "latest"}, f"{name}: pin a tag for {image}"


def test_kafka_runs_single_node_kraft(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node_id}@kafka:9093"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in env["KAFKA_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["CLUSTER_ID"]
    assert not any("ZOOKEEPER" in key for key in env)
    # single broker: internal topics cannot ask for more replicas than exist
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    ):
        assert env[key] == "1"
    log_dirs = env["KAFKA_LOG_DIRS"]
    assert ("volume", "kafka-data", log_dirs) in _volumes(services["kafka"])


def test_database_archives_wal_to_a_named_volume(services: dict[str, dict[str, Any]]) -> None:
    db = services["db"]
    settings = dict(
        arg.split("=", 1) for arg in _command(db) if "=" in arg and not arg.startswith("-")
    )
    assert settings["wal_level"] == "replica"
    assert settings["archive_mode"] == "on"
    assert WAL_ARCHIVE in settings["archive_command"]
    assert "%p" in settings["archive_command"]
    assert "%f" in settings["archive_command"]
    # a WAL segment is switched at least this often: RPO under 5 minutes
    assert 0 < int(settings["archive_timeout"]) < 300
    mounts = {target: kind for kind, _, target in _volumes(db)}
    assert mounts[WAL_ARCHIVE] == "volume"
    assert any(kind == "volume" and "pgdata" in target for kind, _, target in _volumes(db))


def test_wal_archive_is_handed_to_postgres_before_the_database_starts(
    services: dict[str, dict[str, Any]],
) -> None:
    # a fresh named volume belongs to root; PostgreSQL runs as `postgres`
    archive_volume = next(
        source for _, source, target in _volumes(services["db"]) if target == WAL_ARCHIVE
    )
    preparers = [
        name
        for name, condition in _depends_on(services["db"]).items()
        if condition == "service_completed_successfully"
        and ("volume", archive_volume, WAL_ARCHIVE) in _volumes(services[name])
    ]
    assert preparers, "nothing prepares the WAL archive volume before db starts"
    command = " ".join(_command(services[preparers[0]]))
    assert f"chown postgres:postgres {WAL_ARCHIVE}" in command


def test_redis_appends_only(services: dict[str, dict[str, Any]]) -> None:
    command = _command(services["redis"])
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(
        kind == "volume" and target == "/data" for kind, _, target in _volumes(services["redis"])
    )


def test_migrate_is_one_shot_after_the_database(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert _command(migrate) == ["migrate"]
    assert _depends_on(migrate) == {"db": "service_healthy"}
    # the owner, which alone may change the schema
    assert _secrets(migrate) == {"eriop_database_url": "migrate_database_url"}
    assert migrate["build"]["dockerfile"] == "deploy/Dockerfile"


def test_worker_waits_for_its_dependencies(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert _command(worker) == ["worker"]
    assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
    deps = _depends_on(worker)
    assert deps["kafka"] == "service_healthy"
    assert deps["redis"] == "service_healthy"
    # db-roles runs after migrate: the schema and the worker's login role exist
    assert deps["db-roles"] == "service_completed_successfully"
    assert _depends_on(services["db-roles"])["migrate"] == "service_completed_successfully"
    assert 9108 in {container for _, container in _ports(worker)}
    assert "/livez" in _healthcheck_test(worker)


def test_worker_environment_names_the_eriop_settings(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["worker"])
    for name in WORKER_ENV:
        assert env.get(name), f"worker environment lacks {name}"
    assert env["ERIOP_KAFKA__IDEMPOTENCE"] == "true"
    assert env["ERIOP_KAFKA_BOOTSTRAP"].split(",")[0].split(":")[0] == "kafka"
    # the URLs hold passwords: files, not variables
    assert "ERIOP_DATABASE_URL" not in env
    assert "ERIOP_REDIS_URL" not in env
    assert _secrets(services["worker"]) == {
        "eriop_database_url": "worker_database_url",
        "eriop_redis_url": "redis_url",
    }


def test_secrets_dir_is_the_one_settings_read() -> None:
    from pipeline.settings import SECRETS_DIR as settings_dir

    assert settings_dir == SECRETS_DIR


def test_no_literal_secrets(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in _env(service).items():
            if _SECRET_KEY.search(key):
                assert value.startswith("${"), f"{name}.{key} must come from the environment"
            if "://" in value and "@" in value:
                userinfo = value.split("://", 1)[1].rsplit("@", 1)[0]
                literal = _INTERPOLATION.sub("", userinfo)
                assert literal.partition(":")[2] == "", f"{name}.{key}: password in the URL"


# ------------------------------------------------------------- health and dependencies


def test_health_checks_present(services: dict[str, dict[str, Any]]) -> None:
    for name in NEEDS_HEALTHCHECK:
        check = services[name].get("healthcheck") or {}
        assert not check.get("disable"), name
        assert _healthcheck_test(services[name]).strip(), name
    assert "pg_isready" in _healthcheck_test(services["db"])
    assert "ping" in _healthcheck_test(services["redis"])


def test_depends_on_targets_exist_with_valid_conditions(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for target, condition in _depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert condition in DEPENDS_ON_CONDITIONS, f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                check = services[target].get("healthcheck") or {}
                assert check.get("test"), f"{target} has no health check"
                assert not check.get("disable"), f"{target} has its health check disabled"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", target


def _protocols(service: dict[str, Any]) -> list[str]:
    """The protocol of every published port, in the order of :func:`_ports`."""
    out = []
    for item in service.get("ports") or []:
        if isinstance(item, dict):
            out.append(str(item.get("protocol", "tcp")))
        else:
            out.append(str(item).split("/", 1)[1] if "/" in str(item) else "tcp")
    return out


def test_ports_are_not_published_twice(services: dict[str, dict[str, Any]]) -> None:
    host_ports = [
        (host.rsplit(":", 1)[-1], proto)
        for service in services.values()
        for (host, _), proto in zip(_ports(service), _protocols(service), strict=True)
        if host is not None
    ]
    assert len(host_ports) == len(set(host_ports))
    assert ("9090", 9090) in _ports(services["prometheus"])
    assert ("3000", 3000) in _ports(services["grafana"])
    assert ("9093", 9093) in _ports(services["alertmanager"])


# ----------------------------------------------------------------- volumes and paths


def test_named_volumes_declared_and_used(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    used = {
        source
        for service in services.values()
        for kind, source, _ in _volumes(service)
        if kind == "volume"
    }
    assert used <= declared, f"undeclared volumes: {used - declared}"
    assert declared <= used, f"unused volumes: {declared - used}"
    for name in ("kafka", "db", "redis"):
        assert any(kind == "volume" for kind, _, _ in _volumes(services[name])), name


def test_build_contexts_and_dockerfiles_exist(services: dict[str, dict[str, Any]]) -> None:
    built = [name for name, service in services.items() if "build" in service]
    assert set(built) >= {"migrate", "worker"}
    for name in built:
        build = services[name]["build"]
        context = REPO / (build if isinstance(build, str) else build.get("context", "."))
        assert context.is_dir(), f"{name}: build context {context} missing"
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert (context / dockerfile).is_file(), f"{name}: {dockerfile} missing"


def test_bind_mounts_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for kind, source, _ in _volumes(service):
            if kind == "bind":
                assert (REPO / source).exists(), f"{name}: {source} missing"


# ------------------------------------------------------------------------ monitoring


def test_prometheus_scrapes_the_worker(services: dict[str, dict[str, Any]]) -> None:
    port = int(_env(services["worker"])["ERIOP_METRICS_PORT"])
    assert port in {container for _, container in _ports(services["worker"])}
    assert _worker_scrape_targets() == [f"worker:{port}"]


def test_prometheus_mounts_its_config_and_rules(services: dict[str, dict[str, Any]]) -> None:
    mounts = {target: source for kind, source, target in _volumes(services["prometheus"])}
    config_path = next(
        arg.split("=", 1)[1]
        for arg in _command(services["prometheus"])
        if arg.startswith("--config.file=")
    )
    assert (REPO / mounts[config_path]).resolve() == PROMETHEUS_CONFIG
    # rule_files are relative to the config file, in the container as in the repository
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    container_dir = Path(config_path).parent
    for pattern in config["rule_files"]:
        assert not Path(pattern).is_absolute()
        rules_dir = str(container_dir / Path(pattern).parent)
        assert rules_dir in mounts, f"{rules_dir} not mounted"
        assert (REPO / mounts[rules_dir]).resolve() == (
            PROMETHEUS_CONFIG.parent / Path(pattern).parent
        )
        assert list(PROMETHEUS_CONFIG.parent.glob(pattern)), pattern


def test_grafana_provisioning(services: dict[str, dict[str, Any]]) -> None:
    mounts = {target: source for kind, source, target in _volumes(services["grafana"])}
    provisioning = REPO / mounts["/etc/grafana/provisioning"]
    assert provisioning.resolve() == REPO / "deploy" / "grafana" / "provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "eriop.yml").read_text())
    dashboards_path = providers["providers"][0]["options"]["path"]
    assert (REPO / mounts[dashboards_path]).resolve() == REPO / "deploy" / "grafana" / "dashboards"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    url = urlsplit(datasources["datasources"][0]["url"])
    assert url.hostname == "prometheus"
    assert ("9090", url.port) in _ports(services["prometheus"])
    env = _env(services["grafana"])
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    secret = env["GF_SECURITY_ADMIN_PASSWORD__FILE"]
    assert secret.startswith(f"{SECRETS_DIR}/")
    assert secret.rsplit("/", 1)[1] in _secrets(services["grafana"])


# ------------------------------------------------------------------------ Dockerfile


def test_dockerfile_builds_the_project_as_non_root() -> None:
    instructions = _dockerfile_instructions()
    froms = [rest.split()[0] for keyword, rest in instructions if keyword == "FROM"]
    assert froms
    assert all(image == "python:3.11-slim" for image in froms)
    copies = " ".join(rest for keyword, rest in instructions if keyword == "COPY")
    for path in ("pyproject.toml", "README.md", "pipeline/", "agents/", "schemas/", "eriop/"):
        assert path in copies
        assert (REPO / path).exists()
    assert any(keyword == "RUN" and "pip install" in rest for keyword, rest in instructions)

    final = _final_stage(instructions)
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the runtime stage must switch to a non-root user"
    assert users[-1].split(":")[0] not in {"root", "0"}
    entrypoints = [rest for keyword, rest in final if keyword == "ENTRYPOINT"]
    assert entrypoints
    assert yaml.safe_load(entrypoints[-1]) == ["eriop"]
    healthchecks = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]
    assert healthchecks
    assert "/livez" in healthchecks[-1]
    assert any(keyword == "EXPOSE" and "9108" in rest for keyword, rest in final)


def test_dc09_receiver_publishes_tcp_and_udp_and_is_scraped(
    services: dict[str, dict[str, Any]],
) -> None:
    receiver = services["dc09-receiver"]
    assert _command(receiver) == ["dc09-receiver"]
    env = _env(receiver)
    port = int(env["ERIOP_RECEIVER__PORT"])
    published = set(zip(_ports(receiver), _protocols(receiver), strict=True))
    assert ((str(port), port), "tcp") in published
    assert ((str(port), port), "udp") in published
    assert _depends_on(receiver).get("kafka") == "service_healthy"
    status = int(env["ERIOP_RECEIVER__METRICS_PORT"])
    assert str(status) in _healthcheck_test(receiver)
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for c in jobs["eriop-dc09-receiver"]["static_configs"] for t in c["targets"]]
    assert targets == [f"dc09-receiver:{status}"]
    # the accounts file it is told to read is the one mounted from the checkout
    accounts = env["ERIOP_ALARM__ACCOUNTS_FILE"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in receiver["volumes"]}
    folder, name = accounts.rsplit("/", 1)
    assert (REPO / mounts[folder] / name).is_file()


# ------------------------------------------------------------------- least privilege


def test_admin_ports_are_published_on_loopback_only(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for address, port in _published(service):
            if port in ADMIN_PORTS:
                assert address == "127.0.0.1", f"{name}: port {port} published on {address!r}"
            else:
                assert port in PUBLIC_PORTS, f"{name}: port {port} is neither admin nor public"


def test_prometheus_has_no_lifecycle_api(services: dict[str, dict[str, Any]]) -> None:
    command = _command(services["prometheus"])
    assert not any(arg.startswith("--web.enable-lifecycle") for arg in command)
    assert not any(arg.startswith("--web.enable-admin-api") for arg in command)


def test_no_secret_in_the_environment_or_on_a_command_line(
    services: dict[str, dict[str, Any]],
) -> None:
    text = COMPOSE_FILE.read_text()
    # no secret is interpolated from the host's environment anywhere
    for match in _INTERPOLATION.finditer(text):
        assert not _SECRET_KEY.search(match["name"]), match.group(0)
    for name, service in services.items():
        for key, value in _env(service).items():
            if _SECRET_KEY.search(key):
                # only a pointer to a mounted file (POSTGRES_PASSWORD_FILE, ...__FILE)
                assert key.endswith("_FILE"), f"{name}.{key}"
                assert value.startswith(f"{SECRETS_DIR}/"), f"{name}.{key}"
                assert value.rsplit("/", 1)[1] in _secrets(service), f"{name}.{key}"
        command = " ".join(_command(service))
        assert "--requirepass" not in command, name
        # a secret file is read only into a file (printf is a shell builtin) or a variable
        for text in (command, _healthcheck_test(service).removeprefix("CMD-SHELL")):
            for step in re.split(r"&&|\|\||;|\|", text):
                if "/run/secrets/" in step and "$(cat " in step:
                    assert re.match(r"\s*(printf |[A-Z_]+=)", step), f"{name}: {step.strip()}"
        assert not re.search(r"://[^/\s:@]*:[^/\s@]+@", command), f"{name}: password in URL"


def test_declared_secrets_are_files_and_all_used(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = compose["secrets"]
    used = {source for service in services.values() for source in _secrets(service).values()}
    assert used == set(declared)
    for name, spec in declared.items():
        assert spec["file"] == f"./secrets/{name}", name
    ignored = (REPO / ".gitignore").read_text().split()
    assert "secrets/" in ignored or "/secrets/" in ignored


def test_eriop_services_read_secrets_named_like_their_variables(
    services: dict[str, dict[str, Any]],
) -> None:
    from pipeline.settings import Settings

    fields = {name.lower() for name in Settings.model_fields}
    for name, service in _eriop_services(services).items():
        for target in _secrets(service):
            variable = target.removeprefix("eriop_")
            assert target.startswith("eriop_"), f"{name}: {target}"
            assert target == target.lower(), f"{name}: {target}"
            assert variable.split("__", 1)[0] in fields, f"{name}: {target} names no setting"


def test_the_secrets_script_writes_every_declared_secret(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "secrets"
    run = subprocess.run(
        ["bash", str(SECRETS_SCRIPT), str(out)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert {path.name for path in out.iterdir()} >= set(compose["secrets"])
    assert oct(out.stat().st_mode & 0o777) == "0o700"
    first = {path.name: path.read_text() for path in out.iterdir()}
    # idempotent: a second run keeps every file
    subprocess.run(["bash", str(SECRETS_SCRIPT), str(out)], capture_output=True, check=True)
    assert {path.name: path.read_text() for path in out.iterdir()} == first

    # each service's database URL names its own login role; migrate's is the owner
    roles = {}
    for name, service in _eriop_services(services).items():
        source = _secrets(service).get("eriop_database_url")
        if source is None:
            continue
        url = urlsplit(first[source])
        assert (url.scheme, url.hostname, url.port) == ("postgresql", "db", 5432), name
        assert url.password, name
        roles[name] = url.username
    assert roles.pop("migrate") == _expand(_env(services["db"])["POSTGRES_USER"])
    assert roles, "no ERIOP service connects to the database"
    assert len(set(roles.values())) == len(roles), f"services share a login role: {roles}"
    assert all(re.fullmatch(r"eriop_[a-z0-9_]+", r) for r in roles.values()), roles

    redis = urlsplit(first["redis_url"])
    assert (redis.username, redis.hostname, redis.port) == ("eriop", "redis", 6379)
    acl = first["redis_acl"].splitlines()
    assert "user default off" in acl
    service_user = next(line for line in acl if line.startswith("user eriop "))
    assert "-@admin" in service_user.split()
    assert redis.password not in first["redis_acl"], "the ACL file holds hashes only"


def test_each_database_service_connects_as_a_login_role_made_by_db_roles(
    services: dict[str, dict[str, Any]],
) -> None:
    roles = services["db-roles"]
    assert roles["restart"] == "no"
    made = {arg.rsplit("/", 1)[1] for arg in _command(roles)}
    assert all(arg.startswith(f"{SECRETS_DIR}/") for arg in _command(roles))
    assert made <= set(_secrets(roles))
    assert "postgres_password" in _secrets(roles).values()
    assert _env(roles)["PGPASSWORD_FILE"] == f"{SECRETS_DIR}/postgres_password"
    script = next(target for kind, _, target in _volumes(roles) if kind == "bind")
    assert roles["entrypoint"][-1] == script
    users = set()
    for name, service in _eriop_services(services).items():
        source = _secrets(service).get("eriop_database_url")
        if name == "migrate" or source is None:
            continue
        assert source in made, f"{name} connects with {source}, which db-roles does not make"
        deps = _depends_on(service)
        assert deps.get("db-roles") == "service_completed_successfully", name
        users.add(name)
    assert {"worker", "cap-poller", "dc09-receiver"} <= users
    # the MQTT bridge needs neither the database nor Redis
    assert set(_secrets(services["mqtt-bridge"])) == {"eriop_mqtt__password"}


def test_redis_users_come_from_an_acl_file(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    command = _command(redis)
    aclfile = command[command.index("--aclfile") + 1]
    assert aclfile.startswith(f"{SECRETS_DIR}/")
    assert aclfile.rsplit("/", 1)[1] in _secrets(redis)
    check = _healthcheck_test(redis)
    assert "REDISCLI_AUTH=" in check
    assert f"cat {SECRETS_DIR}/" in check
    assert "-a " not in check


def test_eriop_health_checks_probe_livez_on_their_status_port(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in _eriop_services(services).items():
        check = service.get("healthcheck") or {}
        if check.get("disable"):
            assert service.get("restart") == "no", f"{name} runs without a health check"
            continue
        test = _healthcheck_test(service)
        assert "/livez" in test, name
        published = {container for _, container in _ports(service)}
        assert any(str(port) in test for port in published & ADMIN_PORTS), name
    text = COMPOSE_FILE.read_text() + DOCKERFILE.read_text()
    assert "HEALTH_PORT" not in text


def test_the_lock_pins_every_dependency_with_hashes() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins: dict[str, str] = {}
    hashed: set[str] = set()
    current = ""
    for line in LOCK.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name, _, version = line.split(" ", 1)[0].partition("==")
            assert version, f"not pinned: {line}"
            current = str(canonicalize_name(name))
            pins[current] = version
        elif "--hash=sha256:" in line:
            hashed.add(current)
    assert set(pins) == hashed, f"pins without a hash: {set(pins) - hashed}"
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = str(canonicalize_name(requirement.name))
        assert name in pins, f"{requirement.name} is not in {LOCK.name}: run scripts/lock-deps.sh"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} does not satisfy {spec}: run scripts/lock-deps.sh"
        )


def test_the_image_installs_the_lock_with_hashes() -> None:
    instructions = _dockerfile_instructions()
    copies = [rest for keyword, rest in instructions if keyword == "COPY"]
    assert any("deploy/requirements.lock" in rest for rest in copies)
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "--require-hashes" in runs
    assert "-r requirements.lock" in runs
    # the project itself resolves nothing beyond the lock
    assert "pip install --no-deps ." in runs


def test_each_eriop_service_reads_its_mounted_secrets_into_settings(
    compose: dict[str, Any],
    services: dict[str, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.settings import Settings

    written = tmp_path / "written"
    subprocess.run(["bash", str(SECRETS_SCRIPT), str(written)], capture_output=True, check=True)
    for variable in [key for key in os.environ if key.upper().startswith("ERIOP_")]:
        monkeypatch.delenv(variable)
    for name, service in _eriop_services(services).items():
        # /run/secrets of this container
        run_secrets = tmp_path / name
        run_secrets.mkdir()
        for target, source in _secrets(service).items():
            (run_secrets / target).write_text((written / source).read_text())
        settings = Settings(_secrets_dir=str(run_secrets))  # type: ignore[call-arg]
        for target, source in _secrets(service).items():
            value: Any = settings
            for part in target.removeprefix("eriop_").split("__"):
                value = getattr(value, part)
            assert value.get_secret_value() == (written / source).read_text(), f"{name}.{target}"


def test_waiting_for_an_eriop_service_means_waiting_for_its_readiness(
    services: dict[str, dict[str, Any]],
) -> None:
    eriop = _eriop_services(services)
    for name, service in services.items():
        for target, condition in _depends_on(service).items():
            if target in eriop and condition == "service_healthy":
                assert "/readyz" in _healthcheck_test(eriop[target]), f"{name} -> {target}"
