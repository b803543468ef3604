"""docker-compose.yml and deploy/: the deployment as compose reads it, and its scripts run.

- Without docker: every shell script under deploy/ parses (``bash -n``) and is executable;
  every variable the compose file reads is listed in .env.example (and nothing else is);
  .env is ignored by git.
- With Docker Compose (``docker compose``, else the ``docker-compose`` binary the test
  extras install): ``config`` validates the file with .env.example; the services,
  volumes, health checks, commands and order are the ones the code expects; every
  password comes from the env file, none is written in the file, and a missing one stops
  compose. ``config`` needs no daemon. Outside CI a machine without compose skips these;
  in CI (``CI`` set) they fail instead.
- On a throwaway PostgreSQL 15 (``tests.pgcluster``, never the machine's server):
  ``deploy/postgres/primary-init.sh`` makes the roles, the database and the slot; with
  passwords required over TCP (scram-sha-256, as in the image), migrations, the service
  key and procrastinate's schema are made as the application role (no superuser), and
  ``deploy/postgres/replica-entrypoint.sh`` makes a streaming
  standby that compose's replica health check calls healthy, that refuses writes and
  that receives a write made on the primary afterwards.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from api.routes.system import router as system_router
from api.settings import Settings
from reconciliation.service_key import ENV_VAR as SERVICE_KEY_ENV
from reconciliation.tasks import REPORTS_DIR, apply_procrastinate_schema
from tests.pgcluster import PG_BIN, Cluster, free_port, throwaway_cluster
from vledger.cli import COMMANDS
from vledger.common import DATABASE_ENV

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DEPLOY = ROOT / "deploy"
PRIMARY_INIT = DEPLOY / "postgres" / "primary-init.sh"
REPLICA_ENTRYPOINT = DEPLOY / "postgres" / "replica-entrypoint.sh"

READ_DATABASE_ENV = "VLEDGER_READ_DATABASE"
"""The replica's URL (the optional read-only database setting must read this name)."""
SERVICES = {"db", "replica", "migrate", "app", "worker"}
VOLUMES = {"db-data", "replica-data", "service-key", "reports"}
PASSWORD_VARIABLES = ("POSTGRES_PASSWORD", "VLEDGER_DB_PASSWORD", "VLEDGER_REPLICATION_PASSWORD")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_KEY|TOKEN")
URL_WITH_PASSWORD = re.compile(r"://[^/@:]+:([^/@]+)@")
INTERPOLATION = re.compile(r"^\$\{[A-Z][A-Z0-9_]*(:\?[^}]*|:-)\}$")
COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)")
COMMENT = re.compile(r"^\s*#")
ENV_LINE = re.compile(r"^([A-Z_][A-Z0-9_]*)=", re.MULTILINE)
ENV_LINE_VALUE = re.compile(r"^([A-Z_][A-Z0-9_]*)=(.*)$", re.MULTILINE)
JSON = ("--format", "json")
COMMAND_TIMEOUT_S = 60
REPLICA_READY_S = 60
"""How long the replica may take from its base backup to answering as a standby."""
STREAMED_S = 30
"""How long a write on the primary may take to show on the replica."""


# --- without docker -------------------------------------------------------------------


def test_deploy_scripts_parse_and_are_executable() -> None:
    scripts = sorted(DEPLOY.rglob("*.sh"))
    assert PRIMARY_INIT in scripts and REPLICA_ENTRYPOINT in scripts
    for script in scripts:
        done = subprocess.run(
            ["bash", "-n", str(script)], capture_output=True, check=False, text=True
        )
        assert done.returncode == 0, f"{script}: {done.stderr}"
        # The postgres image sources a non-executable init script instead of running it.
        assert os.access(script, os.X_OK), f"{script} is not executable"


def test_env_example_lists_exactly_the_variables_compose_reads() -> None:
    lines = COMPOSE_FILE.read_text().splitlines()
    used = set(COMPOSE_VARIABLE.findall("\n".join(x for x in lines if not COMMENT.match(x))))
    listed = ENV_LINE.findall(ENV_EXAMPLE.read_text())
    assert len(listed) == len(set(listed)), "a variable is listed twice in .env.example"
    assert used - set(listed) == set(), "read by docker-compose.yml, missing in .env.example"
    assert set(listed) - used == set(), "listed in .env.example, read by nothing"
    assert set(PASSWORD_VARIABLES) <= used


def test_env_example_holds_placeholders_only() -> None:
    values = ENV_LINE_VALUE.findall(ENV_EXAMPLE.read_text())
    assert len(values) >= len(PASSWORD_VARIABLES)
    for name, value in values:
        if SECRET_NAME.search(name):
            assert value == "" or value.startswith("change-me"), f"{name} looks like a secret"


def test_env_is_ignored_and_its_example_is_not() -> None:
    def ignored(name: str) -> bool:
        done = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT, check=False)
        return done.returncode == 0

    assert ignored(".env")
    assert not ignored(".env.example")


# --- with Docker Compose --------------------------------------------------------------


def compose_command() -> list[str] | None:
    """``docker compose`` when the plugin answers, else a ``docker-compose`` binary (the
    venv's first), else None."""
    if shutil.which("docker") is not None:
        done = subprocess.run(
            ["docker", "compose", "version"],
            capture_output=True,
            check=False,
            timeout=COMMAND_TIMEOUT_S,
        )
        if done.returncode == 0:
            return ["docker", "compose"]
    beside = Path(sys.executable).parent / "docker-compose"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("docker-compose")
    return None if found is None else [found]


@pytest.fixture(scope="module")
def compose() -> list[str]:
    command = compose_command()
    if command is None:
        reason = "neither `docker compose` nor docker-compose found (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; in CI the compose tests must run")
        pytest.skip(reason)
    return command


def run_config(
    compose: list[str], env_file: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    """``config`` as JSON, with none of this shell's variables (they would win over the file)."""
    return subprocess.run(
        [*compose, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config", *JSON, *options],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")},
        capture_output=True,
        check=False,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )


def rendered(compose: list[str], env_file: Path, *options: str) -> dict[str, Any]:
    done = run_config(compose, env_file, *options)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def mounts(service: Mapping[str, Any]) -> dict[str, tuple[str, bool]]:
    """Target folder -> (named volume, read-only) of a service's volume mounts."""
    return {
        m["target"]: (m["source"], bool(m.get("read_only", False)))
        for m in service.get("volumes", [])
        if m["type"] == "volume"
    }


def image_workdir() -> Path:
    [workdir] = re.findall(r"^WORKDIR\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    return Path(workdir)


def test_config_validates_with_the_example_env(compose: list[str]) -> None:
    config = rendered(compose, ENV_EXAMPLE)
    assert set(config["services"]) == SERVICES
    assert set(config["volumes"]) == VOLUMES


def test_databases_are_on_named_volumes_and_checked(compose: list[str]) -> None:
    services = rendered(compose, ENV_EXAMPLE)["services"]
    db, replica = services["db"], services["replica"]
    assert mounts(db)["/var/lib/postgresql/data"] == ("db-data", False)
    assert mounts(replica)["/var/lib/postgresql/data"] == ("replica-data", False)
    assert "wal_level=replica" in db["command"]
    assert db["image"] == replica["image"] == "postgres:15"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert "pg_is_in_recovery()" in " ".join(replica["healthcheck"]["test"])
    assert replica["depends_on"]["db"]["condition"] == "service_healthy"
    # The slot the primary makes is the one the replica streams through.
    for name in ("REPLICATION_USER", "REPLICATION_SLOT"):
        assert db["environment"][name] == replica["environment"][name]
    binds = {m["target"]: Path(m["source"]) for m in db["volumes"] + replica["volumes"]}
    assert binds["/docker-entrypoint-initdb.d/10-vledger.sh"] == PRIMARY_INIT
    assert replica["entrypoint"] == ["/usr/local/bin/replica-entrypoint.sh"]
    assert binds["/usr/local/bin/replica-entrypoint.sh"] == REPLICA_ENTRYPOINT


def test_migrate_runs_once_before_the_app_and_the_worker(compose: list[str]) -> None:
    services = rendered(compose, ENV_EXAMPLE)["services"]
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert "vledger migrate" in migrate["command"][-1]
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("app", "worker"):
        after = services[name]["depends_on"]
        assert after["migrate"]["condition"] == "service_completed_successfully", name
        # Both may read the replica (VLEDGER_READ_DATABASE).
        assert after["replica"]["condition"] == "service_healthy", name


def test_app_serves_in_several_processes_and_is_checked_on_readyz(compose: list[str]) -> None:
    app = rendered(compose, ENV_EXAMPLE)["services"]["app"]
    command = app["command"]
    assert command[:2] == ["vledger", "serve"]
    assert int(command[command.index("--workers") + 1]) > 1
    probe = " ".join(app["healthcheck"]["test"])
    [path] = re.findall(r"http://127\.0\.0\.1:8000(/\w+)", probe)
    assert path == "/readyz"
    assert path in {getattr(route, "path", None) for route in system_router.routes}
    assert command[command.index("--port") + 1] == "8000"


def test_worker_runs_the_cli_worker(compose: list[str]) -> None:
    worker = rendered(compose, ENV_EXAMPLE)["services"]["worker"]
    assert worker["command"] == ["vledger", "worker"]
    assert "worker" in COMMANDS


def test_key_and_reports_are_on_named_volumes_where_the_code_looks(compose: list[str]) -> None:
    services = rendered(compose, ENV_EXAMPLE)["services"]
    reports_folder = str(image_workdir() / Settings().reports_dir)
    assert reports_folder == str(image_workdir() / REPORTS_DIR)
    for name in ("migrate", "app", "worker"):
        env = services[name]["environment"]
        assert env[DATABASE_ENV].startswith("postgresql+psycopg://"), name
        key_folder = str(Path(env[SERVICE_KEY_ENV]).parent)
        # Only the one-shot migrate may write the key (it makes it on the first start).
        assert mounts(services[name])[key_folder] == ("service-key", name != "migrate"), name
    for name in ("app", "worker"):
        assert mounts(services[name])[reports_folder] == ("reports", False), name
        read_url = services[name]["environment"][READ_DATABASE_ENV]
        assert read_url.startswith("postgresql+psycopg://") and "@replica:5432/" in read_url


@dataclass(frozen=True)
class Passwords:
    values: dict[str, str]

    def write(self, folder: Path) -> Path:
        env_file = folder / "compose.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in self.values.items()))
        return env_file


def new_passwords() -> Passwords:
    return Passwords({name: secrets.token_hex(16) for name in PASSWORD_VARIABLES})


def test_every_password_comes_from_the_env_file(compose: list[str], tmp_path: Path) -> None:
    passwords = new_passwords()
    services = rendered(compose, passwords.write(tmp_path))["services"]
    db_password = passwords.values["VLEDGER_DB_PASSWORD"]
    assert (
        services["db"]["environment"]["POSTGRES_PASSWORD"]
        == (passwords.values["POSTGRES_PASSWORD"])
    )
    assert (
        services["replica"]["environment"]["PGPASSWORD"]
        == (passwords.values["VLEDGER_REPLICATION_PASSWORD"])
    )
    for name in ("migrate", "app", "worker"):
        [found] = URL_WITH_PASSWORD.findall(services[name]["environment"][DATABASE_ENV])
        assert found == db_password, name
    text = COMPOSE_FILE.read_text()
    assert not any(value in text for value in passwords.values.values())


def test_no_secret_is_written_in_the_file(compose: list[str]) -> None:
    raw = rendered(compose, ENV_EXAMPLE, "--no-interpolate")["services"]
    checked = 0
    for name, service in raw.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert INTERPOLATION.match(value or ""), f"{name}.{key} = {value!r}"
                checked += 1
            for password in URL_WITH_PASSWORD.findall(value or ""):
                assert INTERPOLATION.match(password), f"{name}.{key} holds a password"
                checked += 1
    assert checked >= len(PASSWORD_VARIABLES)


@pytest.mark.parametrize("missing", PASSWORD_VARIABLES)
def test_a_missing_password_stops_compose(compose: list[str], tmp_path: Path, missing: str) -> None:
    passwords = new_passwords()
    del passwords.values[missing]
    done = run_config(compose, passwords.write(tmp_path))
    assert done.returncode != 0
    assert f"required variable {missing} is missing" in done.stderr


# --- the scripts on a throwaway PostgreSQL ---------------------------------------------


def app_url(cluster: Cluster, password: str) -> str:
    return f"postgresql+psycopg://vledger:{password}@127.0.0.1:{cluster.port}/vledger"


def script_env(extra: Mapping[str, str]) -> dict[str, str]:
    base = {"PATH": f"{PG_BIN}:{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return {**base, **extra}


def as_cluster_user(cluster: Cluster, env: Mapping[str, str], *command: str) -> list[str]:
    """``command`` run as the cluster's user (``postgres`` when the tests run as root)."""
    pairs = [f"{k}={v}" for k, v in env.items()]
    if cluster.user is None:
        return ["env", *pairs, *command]
    return ["runuser", "-u", cluster.user, "--", "env", *pairs, *command]


def replication_env(compose: list[str]) -> dict[str, str]:
    db = rendered(compose, ENV_EXAMPLE)["services"]["db"]["environment"]
    return {k: db[k] for k in ("REPLICATION_USER", "REPLICATION_SLOT")}


def run_primary_init(cluster: Cluster, passwords: Passwords, replication: dict[str, str]) -> None:
    env = script_env(
        {
            **passwords.values,
            **replication,
            "PGDATA": str(cluster.data),
            "PGHOST": "127.0.0.1",
            "PGPORT": str(cluster.port),
            "POSTGRES_USER": "postgres",
        }
    )
    done = subprocess.run(
        ["bash", str(PRIMARY_INIT)],
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def role(cluster: Cluster, name: str) -> tuple[object, ...]:
    [row] = cluster.query(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolcanlogin"
        " FROM pg_roles WHERE rolname = %s",
        (name,),
    )
    return row


def test_primary_init_refuses_the_example_placeholders(tmp_path: Path) -> None:
    env = script_env(
        {
            **dict(ENV_LINE_VALUE.findall(ENV_EXAMPLE.read_text())),
            "PGDATA": str(tmp_path),
            "REPLICATION_USER": "r",
            "REPLICATION_SLOT": "s",
            "PGHOST": str(tmp_path),  # nothing listens there: it must stop before psql
        }
    )
    done = subprocess.run(
        ["bash", str(PRIMARY_INIT)], env=env, capture_output=True, check=False, text=True
    )
    assert done.returncode == 1
    assert "POSTGRES_PASSWORD is still the .env.example placeholder" in done.stderr
    assert not (tmp_path / "pg_hba.conf").exists()


@pytest.mark.slow
def test_primary_init_then_app_role_migrates_then_replica_streams(compose: list[str]) -> None:
    passwords = new_passwords()
    replication = replication_env(compose)
    with throwaway_cluster() as primary:
        run_primary_init(primary, passwords, replication)
        assert role(primary, "vledger") == (False, False, False, False, True)
        assert role(primary, replication["REPLICATION_USER"]) == (False, False, False, True, True)
        [(owner,)] = primary.query(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'vledger'"
        )
        assert owner == "vledger"
        slots = primary.query("SELECT slot_name, slot_type FROM pg_replication_slots")
        assert slots == [(replication["REPLICATION_SLOT"], "physical")]
        hba = (primary.data / "pg_hba.conf").read_text().splitlines()
        assert f"host replication {replication['REPLICATION_USER']} all scram-sha-256" in hba

        require_passwords(primary)
        url = app_url(primary, passwords.values["VLEDGER_DB_PASSWORD"])
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(app_url(primary, "not-the-password").replace("+psycopg", "")).close()
        run_migrate_service(compose, url)
        apply_procrastinate_schema(url)  # what `vledger worker` does first, as the same role
        with streaming_replica(primary, passwords, replication) as replica:
            check_replica(compose, primary, replica, url)


def require_passwords(primary: Cluster) -> None:
    """The throwaway cluster's trust, as the image has it: the app role and replication
    over TCP with their passwords (scram-sha-256); the tests' superuser still trusted."""
    appended = (primary.data / "pg_hba.conf").read_text().splitlines()[-1]
    rules = (
        "local all all trust",
        "host all postgres 127.0.0.1/32 trust",
        "host all all 127.0.0.1/32 scram-sha-256",
        appended,
    )
    (primary.data / "pg_hba.conf").write_text("\n".join(rules) + "\n")
    assert primary.query("SELECT pg_reload_conf()") == [(True,)]
    [(errors,)] = primary.query("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")
    assert errors == 0


def run_migrate_service(compose: list[str], url: str) -> None:
    """The migrate service's own command (compose's ``$$`` is a ``$``), as the app role."""
    command = rendered(compose, ENV_EXAMPLE)["services"]["migrate"]["command"]
    command = [part.replace("$$", "$") for part in command]
    with tempfile.TemporaryDirectory() as home:
        keys = Path(home) / "keys"
        keys.mkdir(mode=0o700)  # as the image makes it
        key = keys / "service-key.pem"
        env = script_env({DATABASE_ENV: url, SERVICE_KEY_ENV: str(key), "HOME": home})
        done = subprocess.run(
            command, env=env, capture_output=True, check=False, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "(head)" in done.stdout
        assert key.stat().st_mode & 0o777 == 0o600


@dataclass(frozen=True)
class Replica:
    folder: Path
    port: int

    @property
    def conninfo(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/vledger"


@contextmanager
def streaming_replica(
    primary: Cluster, passwords: Passwords, replication: dict[str, str]
) -> Iterator[Replica]:
    folder = Path(tempfile.mkdtemp(prefix="vledger-replica-"))
    if primary.user is not None:
        entry = pwd.getpwnam(primary.user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    replica = Replica(folder, free_port())
    env = script_env(
        {
            **replication,
            "PGDATA": str(folder / "data"),
            "PRIMARY_HOST": "127.0.0.1",
            "PRIMARY_PORT": str(primary.port),
            "PGPASSWORD": passwords.values["VLEDGER_REPLICATION_PASSWORD"],
            "PRIMARY_WAIT_S": "10",
        }
    )
    server_args = [
        f"-p{replica.port}",
        "-clisten_addresses=127.0.0.1",
        f"-cunix_socket_directories={folder}",
    ]
    log = (folder / "replica.log").open("w")
    process = subprocess.Popen(
        as_cluster_user(primary, env, "bash", str(REPLICA_ENTRYPOINT), *server_args),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield replica
    finally:
        stop = as_cluster_user(primary, script_env({}), "pg_ctl", "stop", "-D")
        subprocess.run(
            [*stop, str(folder / "data"), "-m", "fast", "-w"], capture_output=True, check=False
        )
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def health(compose: list[str], service: str, env: Mapping[str, str]) -> bool:
    """Compose's own health check of ``service`` (``CMD-SHELL``), run here."""
    test = rendered(compose, ENV_EXAMPLE)["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    done = subprocess.run(
        ["sh", "-c", test[1]], env=script_env(env), capture_output=True, check=False, timeout=10
    )
    return done.returncode == 0


def check_replica(compose: list[str], primary: Cluster, replica: Replica, url: str) -> None:
    replica_env = {"PGHOST": str(replica.folder), "PGPORT": str(replica.port)}
    deadline = time.monotonic() + REPLICA_READY_S
    while not health(compose, "replica", replica_env):
        log = (replica.folder / "replica.log").read_text(errors="replace")
        assert time.monotonic() < deadline, f"replica never healthy:\n{log[-3000:]}"
        time.sleep(0.5)
    assert health(compose, "db", {"PGPORT": str(primary.port)})
    with psycopg.connect(replica.conninfo, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE refused (x int)")
        [(revision,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        [(head,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        conn.execute("CREATE TABLE streamed (x int)")
        conn.execute("INSERT INTO streamed VALUES (42)")
    assert revision == head
    deadline = time.monotonic() + STREAMED_S
    while True:
        with psycopg.connect(replica.conninfo, autocommit=True) as conn:
            seen = conn.execute("SELECT to_regclass('streamed') IS NOT NULL").fetchone()
            if seen == (True,) and conn.execute("SELECT x FROM streamed").fetchall() == [(42,)]:
                return
        assert time.monotonic() < deadline, "the write on the primary never reached the replica"
        time.sleep(0.2)
