"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) for tests and `chargewire dev kafka`.

One listener per client security scenario, all on 127.0.0.1: PLAINTEXT, SASL_PLAINTEXT and SASL_SSL (each with
PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512), SSL (a client certificate is optional but verified when given) and MTLS
(SSL with a required client certificate: librdkafka quietly leaves out a certificate the broker would not trust,
so only a listener that requires one shows that mutual TLS really happens).
Two more PLAINTEXT listeners stage a cluster that advertises another address than its bootstrap: REDIRECT listens
on 127.0.0.1 but advertises REDIRECTED, which listens on 127.0.0.2 (loopback too on Linux), so a client that
bootstraps on 127.0.0.1 then produces to 127.0.0.2 (`redirecting_bootstrap`, `redirected_address`).
The broker can be stopped and started again on the same ports and data; `close()` removes everything.
`python -m chargewire.devtools.kafka_broker` runs one until Ctrl-C.
"""

from __future__ import annotations

import atexit
import base64
import logging
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # what confluent_kafka.admin re-exports, without declaring it

from chargewire.devtools.certificates import TlsFiles, generate_tls_files
from chargewire.devtools.kafka_jars import ensure_kafka_jars

logger = logging.getLogger(__name__)

# Scenario (= listener name) -> security protocol.
PROTOCOLS = {
    "PLAINTEXT": "PLAINTEXT",
    "SASL_PLAINTEXT": "SASL_PLAINTEXT",
    "SSL": "SSL",
    "SASL_SSL": "SASL_SSL",
    "MTLS": "SSL",
}
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
USERNAMES = {
    "PLAIN": "chargewire-plain",
    "SCRAM-SHA-256": "chargewire-scram256",
    "SCRAM-SHA-512": "chargewire-scram512",
}
_INTERNAL_LISTENERS = ("BROKER", "CONTROLLER")
# Listener -> (host it binds, listener it advertises): the only listeners not on 127.0.0.1 or not advertising
# themselves. Two listeners because Kafka gives each its own port.
_REDIRECT_LISTENERS = {"REDIRECT": ("127.0.0.1", "REDIRECTED"), "REDIRECTED": ("127.0.0.2", "REDIRECTED")}
REDIRECTED_HOST = _REDIRECT_LISTENERS["REDIRECTED"][0]
HEAP = ("-Xms256m", "-Xmx512m")
# One replica of everything, internal topics included (any node may create them), and few threads.
SMALL_NODE_SETTINGS = {
    "auto.create.topics.enable": "false",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
    "background.threads": "2",
    "log.cleaner.threads": "1",
}
FORMAT_HEAP = ("-Xmx256m",)
ClientConfig = dict[str, str | int | float | bool]
_running: set[KafkaBroker] = set()  # started and not yet stopped, for the atexit hook


class KafkaBrokerError(RuntimeError):
    """The broker could not be prepared, started or reached."""


def pick_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1, below the kernel's ephemeral range."""
    # Below the ephemeral range, no outgoing connection takes one of our ports as its source port while the
    # broker is stopped for a restart, so it can bind them again.
    low = _ephemeral_range_start()
    probes: list[socket.socket] = []
    try:
        candidates = range(max(1024, low - 12_000), low)
        for port in random.sample(candidates, min(200, len(candidates))):
            probe = socket.socket()
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                probe.close()
                continue
            probes.append(probe)
            if len(probes) == count:
                return [held.getsockname()[1] for held in probes]
        raise KafkaBrokerError(f"no {count} free ports found on 127.0.0.1 below {low}")
    finally:
        for held in probes:
            held.close()


def _ephemeral_range_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _cluster_id() -> str:
    # Kafka's own Uuid.randomUuid(): URL-safe base64 of 16 bytes, never starting with '-'.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class KafkaBroker:
    """A Kafka broker process in its own temporary folder; `start()`/`stop()` repeatable, `close()` final."""

    def __init__(
        self,
        jars_dir: Path | None = None,
        log_level: str = "info",
        start_timeout_s: float = 120.0,
        stop_timeout_s: float = 30.0,
    ) -> None:
        self.jars_dir = jars_dir
        self.log_level = log_level
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.base_dir = Path(tempfile.mkdtemp(prefix="chargewire-kafka-"))
        self.data_dir = self.base_dir / "data"
        self.config_path = self.base_dir / "server.properties"
        self.log_path = self.base_dir / "broker.log"
        names = (*_INTERNAL_LISTENERS, *PROTOCOLS, *_REDIRECT_LISTENERS)
        self.ports = dict(zip(names, pick_ports(len(names)), strict=True))
        self.credentials: dict[str, tuple[str, str]] = {
            mechanism: (USERNAMES[mechanism], secrets.token_urlsafe(18)) for mechanism in MECHANISMS
        }
        self.tls: TlsFiles = generate_tls_files(self.base_dir / "tls")
        self._process: subprocess.Popen[bytes] | None = None
        self._closed = False

    # --- addresses and client settings -------------------------------------------------------------------

    def bootstrap(self, protocol: str) -> str:
        """The address of the listener for `protocol` (a security protocol, or MTLS), e.g. "127.0.0.1:40123"."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; expected one of {tuple(PROTOCOLS)}")
        return f"127.0.0.1:{self.ports[protocol]}"

    def redirecting_bootstrap(self) -> str:
        """The PLAINTEXT address on 127.0.0.1 whose metadata advertises the broker at `redirected_address()`."""
        return f"127.0.0.1:{self.ports['REDIRECT']}"

    def redirected_address(self) -> str:
        """Where the broker says it is to clients of `redirecting_bootstrap()`, e.g. "127.0.0.2:40124"."""
        return f"{REDIRECTED_HOST}:{self.ports['REDIRECTED']}"

    def client_config(
        self, protocol: str, mechanism: str | None = None, *, client_certificate: bool | None = None
    ) -> ClientConfig:
        """confluent-kafka settings for `protocol` (SASL needs a `mechanism`; MTLS sends the client certificate)."""
        address = self.bootstrap(protocol)
        security = PROTOCOLS[protocol]
        config: ClientConfig = {"bootstrap.servers": address, "security.protocol": security}
        if client_certificate is None:
            client_certificate = protocol == "MTLS"
        if security.startswith("SASL_"):
            if mechanism not in MECHANISMS:
                raise ValueError(f"{protocol} needs a mechanism, one of {MECHANISMS}; got {mechanism!r}")
            username, password = self.credentials[mechanism]
            config |= {"sasl.mechanism": mechanism, "sasl.username": username, "sasl.password": password}
        elif mechanism is not None:
            raise ValueError(f"{protocol} takes no SASL mechanism")
        if security.endswith("SSL"):
            config["ssl.ca.location"] = str(self.tls.ca_pem)
            if client_certificate:
                config["ssl.certificate.location"] = str(self.tls.client_cert_pem)
                config["ssl.key.location"] = str(self.tls.client_key_pem)
        elif client_certificate:
            raise ValueError(f"{protocol} carries no client certificate")
        return config

    def describe(self) -> str:
        """A human-readable summary: bootstrap address per protocol, credentials, certificate paths."""
        lines = [f"Kafka broker in {self.base_dir} (log: {self.log_path})", "bootstrap servers:"]
        lines += [f"  {protocol:<15} {self.bootstrap(protocol)}" for protocol in PROTOCOLS]
        lines.append(
            f"  {'REDIRECT':<15} {self.redirecting_bootstrap()} (PLAINTEXT, advertises {self.redirected_address()})"
        )
        lines.append("  (loopback: subscribe chargewire with CHARGEWIRE_DELIVERY_ALLOW_NETWORKS=127.0.0.0/8 set)")
        lines.append("SASL users (SASL_PLAINTEXT and SASL_SSL):")
        lines += [f"  {mechanism:<15} {user} / {password}" for mechanism, (user, password) in self.credentials.items()]
        lines += [
            "TLS (SSL, SASL_SSL and MTLS; MTLS requires the client certificate):",
            f"  CA              {self.tls.ca_pem}",
            f"  client cert     {self.tls.client_cert_pem}",
            f"  client key      {self.tls.client_key_pem}",
        ]
        return "\n".join(lines)

    # --- life cycle ----------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (for measuring its CPU)."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the broker (formatting storage the first time) and wait until every listener serves."""
        if self._closed:
            raise KafkaBrokerError("this broker was closed")
        if self.running:
            return
        java = shutil.which("java")
        if java is None:
            raise KafkaBrokerError("`java` (17 or newer) is not installed: Debian package `openjdk-17-jre-headless`")
        if self.jars_dir is None:
            self.jars_dir = ensure_kafka_jars()
        self.config_path.write_text(self._server_properties())
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(java_command(java, self.jars_dir, self.log_level, FORMAT_HEAP))
        started = time.monotonic()
        self._process = start_node(
            java_command(java, self.jars_dir, self.log_level, HEAP), self.config_path, self.log_path
        )
        _running.add(self)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        logger.info("Kafka broker ready in %.1fs (%s)", time.monotonic() - started, self.base_dir)

    def stop(self) -> None:
        """Stop the broker process (SIGTERM, then SIGKILL after `stop_timeout_s`); data and ports are kept."""
        process, self._process = self._process, None
        _running.discard(self)
        if process is not None:
            stop_node(process, self.stop_timeout_s)

    def close(self) -> None:
        """Stop the broker and remove its folder (data, configuration, certificates, log)."""
        self.stop()
        self._closed = True
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # --- topics --------------------------------------------------------------------------------------------

    def admin(self) -> AdminClient:
        """An admin client over the PLAINTEXT listener."""
        return AdminClient({"bootstrap.servers": self.bootstrap("PLAINTEXT")})

    def create_topic(self, name: str, partitions: int = 3, timeout_s: float = 30.0) -> None:
        """Create a topic and wait until every partition has a leader."""
        admin = self.admin()
        future = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name]
        future.result(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            topic = admin.list_topics(topic=name, timeout=timeout_s).topics.get(name)
            leaders = [] if topic is None or topic.error else [p.leader for p in topic.partitions.values()]
            if len(leaders) == partitions and min(leaders) >= 0:
                return
            time.sleep(0.1)
        raise KafkaBrokerError(f"topic {name} has no leader for every partition after {timeout_s}s")

    # --- internals -----------------------------------------------------------------------------------------

    def _format_storage(self, java: list[str]) -> None:
        scram = []
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            username, password = self.credentials[mechanism]
            scram += ["--add-scram", f"{mechanism}=[name={username},password={password}]"]
        format_storage(java, _cluster_id(), self.config_path, scram)

    def _server_properties(self) -> str:
        listeners = {"BROKER": "PLAINTEXT", "CONTROLLER": "PLAINTEXT", **PROTOCOLS}
        listeners |= dict.fromkeys(_REDIRECT_LISTENERS, "PLAINTEXT")
        hosts = {name: host for name, (host, _advertised) in _REDIRECT_LISTENERS.items()}
        addresses = {name: f"{name}://{hosts.get(name, '127.0.0.1')}:{port}" for name, port in self.ports.items()}
        advertised = {
            name: f"{name}://{REDIRECTED_HOST}:{self.ports[target]}"
            for name, (_host, target) in _REDIRECT_LISTENERS.items()
        }
        plain_user, plain_password = self.credentials["PLAIN"]
        jaas = {
            "plain": "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{plain_user}="{plain_password}";',
            "scram-sha-256": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "scram-sha-512": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        }
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.ports['CONTROLLER']}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "BROKER",
            "listeners": ",".join(addresses.values()),
            "advertised.listeners": ",".join(
                advertised.get(name, address) for name, address in addresses.items() if name != "CONTROLLER"
            ),
            "listener.security.protocol.map": ",".join(f"{name}:{kind}" for name, kind in listeners.items()),
            "log.dirs": str(self.data_dir),
            **SMALL_NODE_SETTINGS,
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.tls.server_keystore),
            "ssl.keystore.password": self.tls.keystore_password,
            "ssl.key.password": self.tls.keystore_password,
            "ssl.truststore.type": "PKCS12",
            "ssl.truststore.location": str(self.tls.truststore),
            "ssl.truststore.password": self.tls.truststore_password,
            # Listener-prefixed: Kafka honours ssl.client.auth only this way on SASL_SSL, so say it per listener.
            "listener.name.ssl.ssl.client.auth": "requested",
            "listener.name.sasl_ssl.ssl.client.auth": "none",
            "listener.name.mtls.ssl.client.auth": "required",
            "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        }
        for listener in ("sasl_plaintext", "sasl_ssl"):
            properties[f"listener.name.{listener}.sasl.enabled.mechanisms"] = ",".join(MECHANISMS)
            for mechanism, config in jaas.items():
                properties[f"listener.name.{listener}.{mechanism}.sasl.jaas.config"] = config
        return "".join(f"{key}={escape(value)}\n" for key, value in properties.items())

    def _wait_until_ready(self) -> None:
        """Wait until every listener answers: PLAINTEXT first, then the others at once, each in a thread.

        The broker opens its listeners together; asked one after another, their TLS and SASL handshakes took
        1-1.5 s of each start.
        """
        deadline = time.monotonic() + self.start_timeout_s
        scenarios = [
            ("PLAINTEXT", None),
            ("SSL", None),
            ("MTLS", None),
            *((protocol, mechanism) for protocol in ("SASL_PLAINTEXT", "SASL_SSL") for mechanism in MECHANISMS),
        ]
        checks: list[tuple[str, ClientConfig]] = [
            (f"{protocol} {mechanism or ''}".strip(), self.client_config(protocol, mechanism))
            for protocol, mechanism in scenarios
        ]
        checks += [
            (name, {"bootstrap.servers": address})
            for name, address in (("REDIRECT", self.redirecting_bootstrap()), ("REDIRECTED", self.redirected_address()))
        ]
        first, *rest = checks
        self._wait_for_listener(first, deadline)
        with ThreadPoolExecutor(max_workers=len(rest), thread_name_prefix="kafka-listener-check") as threads:
            for answered in [threads.submit(self._wait_for_listener, check, deadline) for check in rest]:
                answered.result()

    def _wait_for_listener(self, check: tuple[str, ClientConfig], deadline: float) -> None:
        label, config = check
        last_error = "no attempt yet"
        while True:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise KafkaBrokerError(f"Kafka broker exited with {code}:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise KafkaBrokerError(
                    f"Kafka broker not ready after {self.start_timeout_s}s ({label}: {last_error}):\n{self._log_tail()}"
                )
            try:
                # log_level 0: librdkafka's "connection refused" lines while the JVM boots are expected.
                AdminClient({**config, "log_level": 0}).list_topics(timeout=2)
            except KafkaException as exc:
                last_error = str(exc)
                time.sleep(0.2)
            else:
                return

    def _log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return "(no broker log)"


def java_command(java: str, jars_dir: Path, log_level: str, heap: tuple[str, ...]) -> list[str]:
    """The start of a command that runs a class from the Kafka jars, logging at `log_level` to stderr."""
    return [
        java,
        *heap,
        "-Djava.awt.headless=true",
        f"-Dorg.slf4j.simpleLogger.defaultLogLevel={log_level}",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
        "-cp",
        f"{jars_dir}/*",
    ]


def start_node(java: list[str], config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start a Kafka node on `config_path`, appending its output to `log_path` (`java` from `java_command`)."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [*java, "kafka.Kafka", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: Ctrl-C in a terminal reaches us, and we stop the node in order.
            start_new_session=True,
        )


def stop_node(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Stop a Kafka node: SIGTERM (a controlled shutdown), then SIGKILL after `timeout_s`."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGCONT)  # a node a test froze could not shut down
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("Kafka node ignored SIGTERM for %ss; killing it", timeout_s)
        process.kill()
        process.wait()


def format_storage(java: list[str], cluster_id: str, config_path: Path, extra: list[str]) -> None:
    """Format a node's log folder for the cluster `cluster_id` (`java` from `java_command`)."""
    command = [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config_path), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-3000:]
        raise KafkaBrokerError(f"kafka.tools.StorageTool format failed ({result.returncode}):\n{output}")


def escape(value: str) -> str:
    """A value as a Java properties file reads it back."""
    # Java properties files treat backslashes as escapes.
    return value.replace("\\", "\\\\")


@atexit.register
def _stop_leftover_brokers() -> None:
    # A test run that dies without closing its broker must not leave a JVM behind.
    for broker in list(_running):
        broker.stop()


def main() -> None:
    """Run a broker until Ctrl-C, printing its addresses, credentials and certificate paths."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    signal.signal(signal.SIGTERM, _interrupt)
    print("starting Kafka (first run fetches the jars with mvn)...", flush=True)
    with KafkaBroker() as broker:
        print(broker.describe(), flush=True)
        print("Ctrl-C to stop.", flush=True)
        try:
            while broker.running:
                time.sleep(1)
        except KeyboardInterrupt:
            print("stopping...", flush=True)
            return
        print(f"Kafka broker exited on its own; see {broker.log_path}", flush=True)
        raise SystemExit(1)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
